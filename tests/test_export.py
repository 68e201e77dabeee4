"""`python -m mh_lightning.export`: PEFT adapter and merged folders that reproduce the checkpoint,
in a fresh process, and folders that are never half-written or overwritten unasked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mh_lightning.export import export, main

REPO = Path(__file__).resolve().parents[1]
PROBE = list(range(5, 45))  # token ids whose logits are compared
# Bounds on |merged logits - 4-bit + adapter logits| on the tiny model (README: "Export"). Both
# use the same dequantized base weights (the 4-bit path computes in float32 on every CPU since
# docs/bnb_avx512bf16.md's fix) and differ by rounding only; the tiny model's probe logits are
# below 2 in size. float32: merging rounds W + s*B@A once and the sums run in another order, each
# sum of n <= 512 terms within n * 2**-24 of its size: 512 * 6e-8 * 2 = 6e-5 < 1e-4 (measured 7e-7).
# float16 / bfloat16 round every weight and activation to 2**-11 / 2**-8 relative, 1e-3 / 8e-3 on
# a logit of 2 for one rounding; the bounds leave 10x / 6x for the few in a row along two layers
# (measured on the 3-epoch test run: 9.7e-4 / 1.0e-2).
MERGE_BOUNDS = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}

FRESH_PROCESS = """
import sys, torch
from transformers import AutoModelForCausalLM
merged = AutoModelForCausalLM.from_pretrained(sys.argv[2])
merged_without_peft = "peft" not in sys.modules
from peft import PeftModel
from mh_lightning.model import load_base_model
base = load_base_model("builtin:tiny-falcon", "nf4", "float32")
adapter = PeftModel.from_pretrained(base, sys.argv[1]).eval()
ids = torch.tensor([PROBE])
with torch.no_grad():
    torch.save({"adapter": adapter(input_ids=ids).logits, "merged": merged(input_ids=ids).logits,
                "merged_without_peft": merged_without_peft}, sys.argv[3])
""".replace("PROBE", repr(PROBE))


@pytest.fixture(scope="module")
def reference(tiny_checkpoint) -> torch.Tensor:
    """The checkpoint's own logits (4-bit base + adapter) on the probe tokens."""
    from mh_lightning.checkpoint import load_for_inference

    model = load_for_inference(tiny_checkpoint)[0]
    with torch.no_grad():
        return model(input_ids=torch.tensor([PROBE])).logits


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    folders = {"adapter": root / "adapter", "float32": root / "merged32"}
    assert main(["--checkpoint", str(tiny_checkpoint), "--out", str(folders["adapter"])]) == 0
    assert main(["--checkpoint", str(tiny_checkpoint), "--out", str(folders["float32"]), "--merge",
                 "--dtype", "float32"]) == 0
    return folders


def test_the_adapter_folder_is_a_standard_peft_folder(exported):
    folder = exported["adapter"]
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "generation_config.json", "mh_lightning.json", "README.md"} <= {p.name for p in folder.iterdir()}
    config = json.loads((folder / "adapter_config.json").read_text())
    assert (config["base_model_name_or_path"], config["peft_type"], config["r"]) == ("builtin:tiny-falcon", "LORA", 16)
    generation = json.loads((folder / "generation_config.json").read_text())
    assert (generation["do_sample"], generation["temperature"], generation["top_p"],
            generation["max_new_tokens"]) == (True, 0.7, 0.7, 200)
    metadata = json.loads((folder / "mh_lightning.json").read_text())
    assert metadata["prompt_style"]["human_tag"] == "<HUMAN>:" and metadata["merged"] is False


def test_a_fresh_process_reproduces_the_checkpoint_logits(exported, reference, tmp_path):
    out = tmp_path / "logits.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(exported["adapter"]), str(exported["float32"]),
                    str(out)], check=True, env=env, timeout=300, capture_output=True)
    logits = torch.load(out)
    # The same model and kernels; only the thread count differs (1 there), which may split the
    # sums differently: float32 rounding, bounded as MERGE_BOUNDS["float32"] (measured 3.6e-7).
    assert (logits["adapter"] - reference).abs().max().item() <= 1e-4
    assert logits["merged_without_peft"]
    assert (logits["merged"] - reference).abs().max().item() <= MERGE_BOUNDS["float32"]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_merged_half_precision_stays_within_the_stated_bound(dtype, tiny_checkpoint, reference, tmp_path):
    from transformers import AutoModelForCausalLM

    metadata = export(tiny_checkpoint, tmp_path / dtype, merge=True, dtype=dtype)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / dtype, dtype="auto")  # "auto": the stored dtype
    assert merged.dtype == getattr(torch, dtype)
    assert "quantization_config" not in json.loads((tmp_path / dtype / "config.json").read_text())
    with torch.no_grad():
        logits = merged(input_ids=torch.tensor([PROBE])).logits.float()
    difference = (logits - reference).abs().max().item()
    assert 0 < difference <= MERGE_BOUNDS[dtype]
    assert 0 < metadata["max_abs_logit_diff"] <= MERGE_BOUNDS[dtype]


def test_generate_accepts_both_exported_folders(exported, capsys):
    from mh_lightning.generate import main as generate

    for folder in exported.values():
        assert generate(["--checkpoint", str(folder), "--prompt", "Hi", "--max-new-tokens", "4", "--seed", "0"]) == 0


def test_a_non_empty_folder_is_not_overwritten_without_force(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the folder is not empty; give --force" in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert main(["--checkpoint", str(tiny_checkpoint), "--out", str(out), "--force"]) == 0
    assert (out / "adapter_model.safetensors").is_file() and not (out / "notes.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or old folder left


def test_a_failed_export_leaves_nothing_behind(tiny_checkpoint, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("mh_lightning.inference.export.model_card", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        export(tiny_checkpoint, tmp_path / "new" / "adapter")
    assert list(tmp_path.iterdir()) == []
    old = tmp_path / "old"
    old.mkdir()
    (old / "notes.txt").write_text("keep me")
    with pytest.raises(RuntimeError, match="disk full"):
        export(tiny_checkpoint, old, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"] and (old / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(("argv", "message"), [
    (["--checkpoint", "{tmp}/missing.ckpt", "--out", "{tmp}/x"], "missing.ckpt: checkpoint not found"),
    (["--checkpoint", "{ckpt}", "--out", "{ckpt_dir}", "--force"], "holds the checkpoint"),
    (["--checkpoint", "{ckpt}", "--out", "{ckpt}"], "is a file, not a folder"),
    (["--checkpoint", "{ckpt}", "--out", "{tmp}/x", "--dtype", "float16"], "--dtype applies to --merge only"),
])
def test_bad_export_input_is_one_line_and_a_nonzero_exit(argv, message, tiny_checkpoint, tmp_path, capsys):
    values = {"tmp": tmp_path, "ckpt": tiny_checkpoint, "ckpt_dir": tiny_checkpoint.parent}
    assert main([a.format(**values) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "x").exists()
