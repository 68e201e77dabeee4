"""A model soup: the crisis classifier as the average of artefacts that scripts/train_safety_classifier.py
made (`--soup A B`; docs/safety.md, Training). One model, so one forward a message, unlike an
ensemble; the answer head, temperature and thresholds are fitted anew on the average (steps 4-6 of
`mh_lightning.safety.training`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from mh_lightning.safety.classifier import CrisisModel, load_base, read_metadata
from mh_lightning.safety.training import SPLITS, Settings, finish, read_rows, sha256


def soup(members: Sequence[Path], settings: Settings | None = None,
         log: Callable[[str], None] = print) -> tuple[dict[str, torch.Tensor], dict]:
    """Steps 4-6 on the uniform average of the fine-tuned tensors of `members`, on this checkout's
    data; returns the artefact's tensors and metadata (which names the members' sha256)."""
    settings = settings or Settings()
    started = time.perf_counter()
    torch.set_num_threads(settings.threads)
    averaged = average(members, settings.frozen_layers)
    rows = read_rows(settings)
    by_split = {s: [r for r in rows if r["split"] == s] for s in SPLITS}
    tokenizer, bert = load_base()
    model = CrisisModel(bert, settings.frozen_layers)
    model.load_state_dict(averaged, strict=False)
    log(f"soup of {len(members)}: " + ", ".join(f"{path.name} ({sha256(path)[:12]})" for path in members))
    tensors, meta = finish(model, tokenizer, settings, by_split, started, log)
    meta["soup_of"] = [sha256(path) for path in members]
    return tensors, meta


def average(members: Sequence[Path], frozen_layers: int) -> dict[str, torch.Tensor]:
    """The float32 mean of each fine-tuned tensor of `members`, artefacts fine-tuned above the same
    `frozen_layers` stock layers and holding the same tensors (else a ValueError names them)."""
    from safetensors.torch import load_file

    for path in members:
        if (frozen := read_metadata(path)["frozen_layers"]) != frozen_layers:
            raise ValueError(f"{path}: frozen_layers {frozen}, not {frozen_layers}: a soup averages models "
                             "fine-tuned above the same layers")
    loaded = [load_file(path) for path in members]
    if any(set(state) != set(loaded[0]) for state in loaded):
        raise ValueError(f"{', '.join(map(str, members))}: the artefacts hold different tensors")
    return {name: sum(state[name].float() for state in loaded) / len(loaded) for name in loaded[0]}
