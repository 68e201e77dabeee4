"""The benchmark commands (mh_lightning.benchmarking, run as scripts/benchmark.py,
scripts/hf_trainer_baseline.py, ...) on the tiny model: the JSON they print, token counts checked
exactly against the data, and the benchmark models' sizes. No timing is asserted: speed is
measured by running the scripts (docs/benchmarks.md)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import REPO, TINY_CONFIG, needs_real_data

from mh_lightning.batching import pack_batch
from mh_lightning.benchmarking import generation, hf_trainer, loop, rounds, trl_sft
from mh_lightning.data import IGNORE_INDEX

pytestmark = pytest.mark.slow  # the benchmark scripts train

KEYS = {"trained_tokens_per_s", "processed_tokens_per_s", "padding_efficiency", "seconds_per_step",
        "peak_host_mb", "peak_gpu_mb", "params", "trainable_params", "trained_tokens", "processed_tokens"}
TINY_PARAMS = 475_904 + 59_392  # base (4-bit weights counted at full size) + LoRA
# LoRA r=16 on 2 layers of hidden 128: qkv 16*(128+192) + dense 16*(128+128) + 2 * 16*(128+512).
TINY_LORA = 2 * (16 * 320 + 16 * 256 + 2 * 16 * 640)


def printed_json(capsys: pytest.CaptureFixture[str]) -> dict:
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines  # stdout holds the JSON line only
    return json.loads(lines[0])


def test_benchmark_prints_exact_token_counts_and_logs_them(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = {}
    report = loop.report
    monkeypatch.setattr(loop, "report", lambda cli, monitor, peak: report(seen.setdefault("cli", cli), monitor, peak))
    loop.main(["--config", str(TINY_CONFIG), "--steps", "2", "--warmup_steps", "1"])
    result = printed_json(capsys)
    assert KEYS <= set(result)
    assert (result["steps"], result["warmup_steps"], result["packing"]) == (2, 1, True)
    assert (result["params"], result["trainable_params"]) == (TINY_PARAMS, TINY_LORA)
    assert result["peak_gpu_mb"] is None and "mfu" not in result  # no GPU here
    assert result["peak_host_mb"] > 100

    # Step 1 (warm-up) trains micro-batch 0; steps 2-3 (measured) micro-batches 1 and 2 of
    # the sampler's first epoch (micro-batch 4, no accumulation in the tiny config).
    cli = seen["cli"]
    data = cli.datamodule
    order = list(data.train_sampler())
    batches = [[data.train_examples[i] for i in order[4 * b : 4 * b + 4]] for b in (1, 2)]
    trained = sum(len(e.input_ids) for batch in batches for e in batch)
    packed = [pack_batch(batch, data.tokenizer.pad_token_id, 256, IGNORE_INDEX) for batch in batches]
    processed = sum(b["input_ids"].numel() for b in packed)
    assert (result["trained_tokens"], result["processed_tokens"]) == (trained, processed)
    assert result["padding_efficiency"] == pytest.approx(trained / processed, abs=1e-9)
    assert 0 < result["padding_efficiency"] <= 1
    assert result["trained_tokens_per_s"] == pytest.approx(trained / result["seconds"], rel=1e-9)
    assert result["seconds_per_step"] == pytest.approx(result["seconds"] / 2, rel=1e-9)

    logged = cli.trainer.callback_metrics  # the last step's values, as sent to the logger
    last = packed[-1]
    assert float(logged["train/padding_efficiency"]) == pytest.approx(
        int(last["num_tokens"]) / last["input_ids"].numel(), abs=1e-6)
    for name in ("train/trained_tokens_per_s", "train/processed_tokens_per_s", "train/seconds_per_step",
                 "perf/peak_host_mb"):
        assert float(logged[name]) > 0, name
    assert "perf/peak_gpu_mb" not in logged


def test_hf_baseline_prints_the_same_keys_for_the_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    hf_trainer.main(["--config", str(TINY_CONFIG), "--steps", "1", "--warmup_steps", "1"])
    result = printed_json(capsys)
    assert KEYS <= set(result)
    assert (result["trainer"], result["steps"], result["gradient_checkpointing"]) == ("hf", 1, True)
    assert (result["params"], result["trainable_params"]) == (TINY_PARAMS, TINY_LORA)
    # One measured micro-batch of 4 conversations, padded to its longest by the collator.
    assert 0 < result["trained_tokens"] <= result["processed_tokens"] <= 4 * 256
    assert result["processed_tokens"] % 4 == 0
    assert result["padding_efficiency"] == pytest.approx(result["trained_tokens"] / result["processed_tokens"])


def test_synthetic_falcon_7b_has_the_real_architecture() -> None:
    from transformers import FalconForCausalLM

    config = loop.synthetic_config("falcon-7b")
    with torch.device("meta"):  # shapes only: no memory, no download
        model = FalconForCausalLM(config)
    assert sum(p.numel() for p in model.parameters()) == 6_921_720_704  # tiiuae/falcon-7b
    assert (config.multi_query, config.parallel_attn, config.bias, config.alibi) == (True, True, False, False)


@needs_real_data
def test_falcon_20m_preset_has_20m_parameters_and_a_7k_vocabulary_on_the_real_data() -> None:
    from conftest import REAL_PARQUET
    from transformers import FalconForCausalLM

    from mh_lightning import tiny
    from mh_lightning.data import load_conversations

    texts = [c.text() for c in load_conversations(str(REAL_PARQUET))]
    tokenizer = tiny.corpus_tokenizer("falcon-20m", texts)  # what `python -m mh_lightning.tiny --corpus` uses
    assert 6_500 <= len(tokenizer) <= 7_000
    config = tiny.falcon_config(tiny.PRESETS["falcon-20m"], len(tokenizer), tokenizer.eos_token_id)
    with torch.device("meta"):
        params = sum(p.numel() for p in FalconForCausalLM(config).parameters())
    assert 19_000_000 <= params <= 21_000_000
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (512, 6, 8)


def test_bench_generate_times_the_adapter_and_the_merged_model(
    tiny_checkpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    generation.main(["--checkpoint", str(tiny_checkpoint), "--questions", "2",
                     "--max_new_tokens", "4", "--device", "cpu"])
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["model"] for r in lines] == ["4bit+adapter", "merged"]
    assert [r["quantization"] for r in lines] == ["nf4", "none"]
    for r in lines:
        assert r["answers"] == 2 and 2 <= r["new_tokens"] <= 8  # at least one token per answer
        assert r["tokens_per_s"] == pytest.approx(r["new_tokens"] / r["seconds"])


# -- the speed work: the same numbers, fewer operations ---------------------------------------
def packed_examples() -> dict:
    from mh_lightning.data import TokenizedExample

    # three conversations: 3 prompt tokens (no label), then the answer
    examples = [TokenizedExample(list(range(5, 5 + n)), [IGNORE_INDEX] * 3 + list(range(8, 5 + n)), False)
                for n in (9, 6, 12)]
    return pack_batch(examples, pad_id=0, max_length=16, ignore_index=IGNORE_INDEX)


def lora_grads(module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.requires_grad}


def test_chunked_loss_is_the_models_loss_and_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    """`step` (LM head on labelled positions only, in chunks) against the model's own loss."""
    from mh_lightning.module import FalconLoRAModule
    from mh_lightning.training import losses

    monkeypatch.setattr(losses, "CHUNK_ROWS", 4)  # 18 labelled positions: 5 chunks, the last one partial
    monkeypatch.setattr(losses.chunked_cross_entropy, "__defaults__", (4,))
    batch = packed_examples()
    module = FalconLoRAModule(compute_dtype="float32")
    module.build("cpu")
    module.model.train()
    heads = []
    head = module.model.get_base_model().lm_head
    head.register_forward_hook(lambda m, args, out: heads.append(args[0].shape))
    results = []
    for use_step in (False, True):
        module.zero_grad()
        torch.manual_seed(1)  # the same LoRA dropout masks in both
        if use_step:
            loss = module.step(batch)
        else:
            loss = module.model(**{k: v for k, v in batch.items() if k != "num_tokens"}).loss
        (loss / 8).backward()  # as under accumulation: the incoming gradient is not 1
        results.append((loss.item(), lora_grads(module)))
    assert heads == [batch["input_ids"].shape + (128,)]  # the LM head module ran only for the model's own loss
    (reference, ref_grads), (chunked, grads) = results
    labelled = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    assert labelled == 6 + 3 + 9
    # float32: the same logits summed in another order; 1e-6 relative is a few ulps of a loss near 7
    assert chunked == pytest.approx(reference, rel=1e-6)
    for name, grad in ref_grads.items():  # the same, to float32 summation order (relative to the largest entry)
        assert (grads[name] - grad).abs().max() <= 1e-5 * grad.abs().max(), name


def test_dequantize_once_gives_bit_identical_loss_and_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    import bitsandbytes as bnb

    from mh_lightning.module import FalconLoRAModule

    batch = packed_examples()
    calls = []
    matmul_4bit = bnb.matmul_4bit
    monkeypatch.setattr(bnb, "matmul_4bit", lambda *a, **k: calls.append(1) or matmul_4bit(*a, **k))
    results = []
    for once in (False, True):
        module = FalconLoRAModule(compute_dtype="float32", dequantize_once=once)
        module.build("cpu")
        module.model.train()
        calls.clear()
        torch.manual_seed(1)
        loss = module.step(batch)
        loss.backward()
        results.append((loss.item(), lora_grads(module), len(calls)))
    (loss, grads, calls), (loss_once, grads_once, calls_once) = results
    assert (calls, calls_once) == (8, 0)  # 2 layers x 4 linears dequantized per forward, then none
    assert loss_once == loss  # the same kernels make the same weight: exact, on any CPU
    assert all(torch.equal(grads_once[n], g) for n, g in grads.items())


def test_dequantize_once_is_refused_without_4bit_weights() -> None:
    from mh_lightning.module import FalconLoRAModule, SettingsError

    with pytest.raises(SettingsError, match=r"model.dequantize_once only applies to 4-bit weights.*'int8'"):
        FalconLoRAModule(quantization="int8", dequantize_once=True)


def test_trl_padding_free_lets_falcon_conversations_attend_to_each_other(tmp_path) -> None:
    """TRL's padding-free rows (its bfd packing too) carry position ids but no mask; transformers
    4.57's Falcon then runs SDPA causally over the whole row. The project's packing does not."""
    trl = pytest.importorskip("trl")
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from mh_lightning import tiny
    from mh_lightning.model import load_base_model

    model = load_base_model(str(tiny.build(tmp_path / "m")), quantization="none", compute_dtype="float32",
                            expand_kv_heads=False)
    model.eval()
    first, second = list(range(5, 14)), list(range(20, 32))
    alone = model(input_ids=torch.tensor([second])).logits[0]

    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(
        [{"input_ids": first}, {"input_ids": second}])
    assert "attention_mask" not in batch and batch["input_ids"].shape == (1, 21)
    assert batch["position_ids"][0].tolist() == list(range(9)) + list(range(12))
    # the boundaries for FlashAttention 2's varlen kernel; Falcon's SDPA path never reads them
    assert batch["cu_seq_lens_q"].tolist() == [0, 9, 21]
    trl_logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0, 9:]
    assert (trl_logits - alone).abs().max().item() > 1e-2  # the second conversation saw the first

    ours = pack_batch([type("E", (), {"input_ids": ids, "labels": ids})() for ids in (first, second)],
                      pad_id=0, max_length=21, ignore_index=IGNORE_INDEX)
    our_logits = model(**{k: v for k, v in ours.items() if k in ("input_ids", "attention_mask", "position_ids")})
    assert ours["input_ids"].shape == (1, 21)
    # fp32, same positions and keys, another mask shape: equal to float rounding
    assert (our_logits.logits[0, 9:] - alone).abs().max().item() < 1e-5
    assert trl.__version__ == "1.16.0"  # the pinned `bench` extra this behaviour was read from


@pytest.mark.slow
def test_gpu_check_dry_run_checks_every_command_on_the_cpu(tmp_path) -> None:
    """scripts/gpu_check.sh --dry-run end to end: the pins, then each command's configs and arguments."""
    import subprocess

    pytest.importorskip("trl")
    out = tmp_path / "gpu_check.jsonl"
    data = REPO / "mh_lightning" / "resources" / "sample_conversations.jsonl"  # any existing file: nothing is read
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--dry-run", "--out", str(out),
                           "--data", str(data)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = {row["run"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert list(lines) == ["versions", "ours_gpu_80gb", "ours_recipe", "hf_recipe", "trl_packing", "trl_default",
                           "ours_gpu_80gb_dequantize_once", "generate_tiny"]
    assert lines["versions"]["wrong"] == {} and lines["versions"]["found"]["transformers"] == "4.57.6"
    assert "error" not in json.dumps(lines)
    settings = {name: (row["precision"], row["gradient_checkpointing"], row["packing"], row["dequantize_once"])
                for name, row in lines.items() if "precision" in row}
    assert settings == {
        "ours_gpu_80gb": ("bf16-mixed", False, True, False),
        "ours_recipe": ("16-mixed", True, True, False),
        "hf_recipe": ("16-mixed", True, False, False),
        "trl_packing": ("bf16-mixed", False, True, False),
        "trl_default": ("bf16-mixed", False, False, False),
        "ours_gpu_80gb_dequantize_once": ("bf16-mixed", False, True, True),
    }
    assert all(row["micro_batch"] == 8 and row["accumulate_grad_batches"] == 8 and row["max_length"] == 512
               for row in lines.values() if "micro_batch" in row)
    assert lines["trl_packing"]["padding_free"] is True and lines["trl_packing"]["trl"] == "1.16.0"


def test_gpu_check_refuses_a_missing_data_file(tmp_path) -> None:
    import subprocess

    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--dry-run", "--data",
                           str(tmp_path / "none.parquet")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"--data {tmp_path / 'none.parquet'}: no such file" in done.stderr


def test_bench_rounds_runs_the_six_commands_in_rotated_rounds(capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(rounds, "epoch_steps", lambda common: 3)
    seen = []

    def fake_run(cmd: list[str]) -> dict:
        seen.append(cmd)
        name = next(n for n, (s, extra, _) in rounds.RUNS.items()
                    if cmd[1].endswith(s) and all(x in cmd for x in extra) and (extra or "--mode" not in cmd
                                                                                 and "--group_by_length" not in cmd))
        speed = {"ours_default": 900.0, "hf_random": 360.0, "hf_grouped": 550.0, "trl_default": 500.0,
                 "trl_packing": 600.0, "trl_padding_free": 450.0}[name]
        return {"trained_tokens_per_s": speed, "trained_tokens_per_cpu_s": speed / 2}

    monkeypatch.setattr(rounds, "run_one", fake_run)
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    out = tmp_path / "bench.jsonl"
    rounds.main(["--rounds", "2", "--out", str(out), "--model", str(model), "--data", "d.parquet"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    runs = rounds.DEFAULT_RUNS
    assert [r["run"] for r in rows] == [*runs, *runs[1:], "ours_default"]  # round 2 rotated
    assert all(len(r["load_before"]) == 3 and len(r["load_after"]) == 3 for r in rows)
    ours = next(c for c in seen if c[1].endswith("benchmark.py"))
    assert ours[-4:] == ["--warmup_steps", "3", "--steps", "3"]  # one epoch of warm-up, one measured
    trl = next(c for c in seen if "--mode" in c)
    assert trl[-2:] == ["--epochs", "1"]
    printed = capsys.readouterr().out
    assert "| trl_best | 1.50x | 1.50x | 1.50x | >= 1.5x |" in printed  # 900 / max(500, 600, 450)
    assert "| hf_random | 2.50x | 2.50x | 2.50x | >= 2.0x |" in printed


def test_blockwise_attention_equals_sdpa_with_the_packing_mask_and_refuses_other_masks() -> None:
    from mh_lightning.batching import MASKED
    from mh_lightning.model import blockwise_causal_attention

    batch = packed_examples()  # rows: 12 + 3 padding, 9 + 6
    mask = batch["attention_mask"]
    rows, length = batch["input_ids"].shape
    torch.manual_seed(0)
    query, key, value = (torch.randn(rows, 4, length, 8, requires_grad=True) for _ in range(3))
    reference = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    blockwise = blockwise_causal_attention(query, key, value, mask)
    assert blockwise.shape == reference.shape
    assert (blockwise - reference).abs().max().item() < 1e-6  # fp32, the same softmax over the same keys
    grads = torch.autograd.grad(blockwise.square().sum(), (query, key, value))
    ref_grads = torch.autograd.grad(reference.square().sum(), (query, key, value))
    assert all((g - r).abs().max().item() < 1e-5 for g, r in zip(grads, ref_grads, strict=True))

    # a mask that is not block-diagonal causal: the caller falls back to SDPA with the mask
    padded = torch.zeros(rows, 1, length, length).masked_fill_(
        ~torch.ones(length, length, dtype=torch.bool).tril(), MASKED)
    padded[:, :, :, -2:] = MASKED  # the last two keys hidden from everyone (a 2D padding mask, made 4D)
    assert blockwise_causal_attention(query, key, value, padded) is None
    causal = padded.clone()
    causal[:, :, :, -2:] = torch.zeros(length, 2).masked_fill_(~torch.ones(length, length).tril().bool()[:, -2:],
                                                                 MASKED)
    whole_rows = blockwise_causal_attention(query, key, value, causal)  # one block per row: plain causal
    plain = torch.nn.functional.scaled_dot_product_attention(query, key, value, is_causal=True)
    assert (whole_rows - plain).abs().max().item() < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["default", "packing"])
def test_trl_baseline_prints_the_benchmark_keys(mode: str, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("trl")
    trl_sft.main(["--config", str(TINY_CONFIG), "--mode", mode, "--steps", "1", "--warmup_steps", "1"])
    result = printed_json(capsys)
    assert KEYS <= set(result)
    assert (result["trainer"], result["mode"], result["steps"], result["gradient_checkpointing"]) == (
        "trl", mode, 1, False)
    assert (result["params"], result["trainable_params"]) == (TINY_PARAMS, TINY_LORA)
    if mode == "packing":  # one flattened row of whole conversations, no padding at all
        assert result["padding_free"] is True and result["trained_tokens"] == result["processed_tokens"]
    else:  # 4 conversations padded to the longest
        assert 0 < result["trained_tokens"] < result["processed_tokens"] <= 4 * 256
