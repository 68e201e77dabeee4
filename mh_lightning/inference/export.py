"""Take a checkpoint elsewhere: a standard PEFT adapter folder, or a merged model folder.

    mh-lightning export --checkpoint CKPT --out exports/adapter
    mh-lightning export --checkpoint CKPT --out exports/merged --merge --dtype float16

An adapter folder loads with `PeftModel.from_pretrained(base, DIR)` (base: the model the
checkpoint names, quantized the same way); a merged folder with
`AutoModelForCausalLM.from_pretrained(DIR)`, no peft needed. Both hold the tokenizer, a
generation config with the recipe's sampling settings, and `mh_lightning.json` (prompt
style and hyperparameters), so `generate`/`chat --checkpoint DIR` accept them too.

The merge adds the LoRA update to the *dequantized* 4-bit weights in float32, then casts to
`--dtype`: the merged model computes with the same base weights as the 4-bit + adapter model.
The folder is written next to DIR under a temporary name and renamed at the end, so a
failed export leaves nothing behind.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from mh_lightning import __version__
from mh_lightning.errors import UsageError
from mh_lightning.inference.generation import GenerationConfig, generation_mode, model_device
from mh_lightning.inference.loading import load_model
from mh_lightning.model.base import torch_dtype
from mh_lightning.model.checkpoint import (
    EXPORT_METADATA,
    read_checkpoint,
    read_export_metadata,
    saved_data_settings,
)
from mh_lightning.prompts import PromptStyle

EXPORT_FORMAT = 1
PROBE_QUESTION = "How do I deal with sadness?"  # the prompt on which the merged logits are compared


# -- the output folder ---------------------------------------------------------------------
def check_out(out: Path, force: bool, checkpoint: Path) -> None:
    """Refuse, before any work, an output that would overwrite something unasked."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"--out {out}: the folder is not empty; give --force to replace it")
    if out.resolve() in (checkpoint.resolve(), *checkpoint.resolve().parents):
        raise UsageError(f"--out {out}: holds the checkpoint {checkpoint}; choose another folder")


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A temporary folder next to `out` that becomes `out` only if the block succeeds."""
    missing = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield stage
        umask = os.umask(0)
        os.umask(umask)
        stage.chmod(0o777 & ~umask)  # mkdtemp makes it private; the export is an ordinary folder
        if out.exists():  # --force: swap the old folder out, then delete it
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            out.rename(old / "folder")
            stage.rename(out)
            shutil.rmtree(old)
        else:
            stage.rename(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in missing:  # parents this export created, innermost first
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise


# -- what goes in it -----------------------------------------------------------------------
def probe_logits(model: torch.nn.Module, tokenizer: Any, style: PromptStyle) -> torch.Tensor:
    ids = tokenizer(style.prompt(PROBE_QUESTION), add_special_tokens=False, return_tensors="pt")["input_ids"]
    with generation_mode(model):
        return model(input_ids=ids.to(model_device(model))).logits.float().cpu()


def merge_adapter(model: torch.nn.Module, dtype: str) -> torch.nn.Module:
    """The base with the LoRA update merged into its dequantized weights, in `dtype`.

    `model` (a PeftModel) is consumed. Merging into 4-bit storage would re-quantize the
    sum and lose the update; dequantizing first gives the exact weights the 4-bit matmuls
    use, and the float32 merge adds only float rounding.
    """
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    adapter = get_peft_model_state_dict(model)
    config = copy.deepcopy(model.peft_config[model.active_adapter])
    base = model.unload()  # the base model, its linears still 4-bit, adapters removed
    if getattr(base, "hf_quantizer", None) is not None:
        base.dequantize()  # also drops quantization_config, so the saved config is a plain one
    fresh = get_peft_model(base.float(), config)
    set_peft_model_state_dict(fresh, adapter)
    merged = fresh.merge_and_unload()
    merged.config.use_cache = True  # training turned the KV cache off
    return merged.to(torch_dtype(dtype))


def model_card(metadata: dict[str, Any], merged: bool) -> str:
    h = metadata["hyper_parameters"]
    load = ("AutoModelForCausalLM.from_pretrained(DIR)" if merged else
            f"PeftModel.from_pretrained(base, DIR)  # base: {h['model_name']}, quantization {h['quantization']}")
    lines = [
        "# mh_lightning export", "",
        f"{'Merged model' if merged else 'LoRA adapter'} exported by mh_lightning {__version__} "
        f"from `{metadata['source_checkpoint']}` (base `{h['model_name']}`).", "",
        "Prompt (the training format): `<HUMAN>: {question}\\n<ASSISTANT>:`. Stop at EOS or where the "
        "model starts a new `<HUMAN>:`/`<ASSISTANT>:` turn (`generate(stop_strings=..., tokenizer=...)`).", "",
        f"Load: `{load}`", "",
    ]
    if merged:
        lines += [f"Largest |logit difference| to the 4-bit + adapter model on a probe prompt "
                  f"({metadata['dtype']}): {metadata['max_abs_logit_diff']:.3g}", ""]
    lines.append("This chatbot is no substitute for professional care. If you or someone you know is in "
                 "danger, call your local emergency number.")
    return "\n".join(lines) + "\n"


def data_settings(checkpoint: Path) -> dict[str, Any]:
    """The data settings of a checkpoint file, or those an exported folder recorded."""
    if checkpoint.is_dir():
        return read_export_metadata(checkpoint).get("data_hyper_parameters") or {}
    return saved_data_settings(read_checkpoint(checkpoint))


def export(checkpoint: Path, out: Path, merge: bool = False, dtype: str | None = None,
           force: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Write the export folder; returns the metadata written to its `mh_lightning.json`."""
    check_out(out, force, checkpoint)
    model, tokenizer, style, hparams = load_model(checkpoint, device)
    source = hparams.pop("source")
    if source != "checkpoint" and source != "adapter":
        raise UsageError(f"--checkpoint {checkpoint}: is a merged model already; there is no adapter to export")
    dtype = dtype or hparams["compute_dtype"]
    metadata: dict[str, Any] = {"format": EXPORT_FORMAT, "version": __version__, "merged": merge,
                                "source_checkpoint": str(checkpoint), "prompt_style": style.to_dict(),
                                "hyper_parameters": hparams}
    data = data_settings(checkpoint)
    if data:  # so that `evaluate --checkpoint DIR` scores the split training held out
        metadata["data_hyper_parameters"] = data
    generation = GenerationConfig().to_hf(tokenizer)
    with staged_folder(out) as stage:
        if merge:
            reference = probe_logits(model, tokenizer, style)
            model = merge_adapter(model, dtype)
            diff = (probe_logits(model, tokenizer, style) - reference).abs().max().item()
            metadata.update(dtype=dtype, max_abs_logit_diff=diff,
                            hyper_parameters={**hparams, "quantization": "none", "compute_dtype": dtype,
                                              "merged_from_quantization": hparams["quantization"]})
            model.generation_config = generation
            model.save_pretrained(stage, safe_serialization=True)
        else:
            model.peft_config[model.active_adapter].base_model_name_or_path = hparams["model_name"]
            model.save_pretrained(stage, safe_serialization=True)
            generation.save_pretrained(stage)
        tokenizer.save_pretrained(stage)
        (stage / EXPORT_METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        (stage / "README.md").write_text(model_card(metadata, merge), encoding="utf-8")
    return metadata
