"""Scale-out: two CPU processes under DDP (gloo) train to the same LoRA weights as one
process; the DDP and FSDP override configs build the strategies they promise; adapter-only
checkpoints survive the wrappers FSDP and activation checkpointing put around layers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import REPO, fit_args
from jsonargparse import ArgumentParser
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, Strategy
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

from mh_lightning.checkpoint import read_checkpoint
from mh_lightning.fit import cli_main
from mh_lightning.module import FalconLoRAModule

pytestmark = pytest.mark.slow  # two-process training and the LightningCLI

STEPS = 3
COMMON = ("--samples.num_questions", "0", "--trainer.limit_val_batches", "0", "--trainer.max_steps", str(STEPS),
          "--model.lora_dropout", "0", "--data.batch_size", "1", "--model.learning_rate", "0.0001")


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tmp_path):
    """The comparison that is exact, not only close in expectation: a global batch of 2 built
    from the same two examples. `ConversationSampler` gives rank r the indices r::2 of the
    seeded order, and one process reads that order front to back, so one process with
    micro-batch 1 accumulating 2 steps on (o0, o1), (o2, o3), ... and two ranks with
    micro-batch 1 each step on o0 | o1, o2 | o3, ... Lightning divides an accumulated loss by
    2 and DDP averages the two ranks' gradients, so both take the mean of the same two
    per-example losses. Dropout is off: the ranks would draw different masks from one process.

    What remains is rounding: g0/2 + g1/2 against (g0 + g1)/2. Adam divides each update by
    sqrt(v) + eps, so where two examples' gradients nearly cancel, a rounding difference of
    1e-11 against eps = 1e-8 moves a weight by up to lr x 1e-3. At the tiny config's lr 3e-3
    that reached 3e-5; at the recipe's lr 1e-4 (configs/falcon7b_qlora.yaml) it stays near 3e-6.
    """
    single = tmp_path / "single"
    cli_main(fit_args(single, *COMMON, "--trainer.accumulate_grad_batches", "2"))

    ddp = tmp_path / "ddp"
    args = fit_args(ddp, *COMMON, "--trainer.strategy", "ddp", "--trainer.devices", "2",
                    "--trainer.accelerator", "cpu")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on two cores
    # Lightning re-launches this same command for rank 1, so it must be a command, not a call.
    done = subprocess.run([sys.executable, "-m", "mh_lightning.fit", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in done.stderr + done.stdout

    one, two = (read_checkpoint(root / "checkpoints" / "last.ckpt") for root in (single, ddp))
    assert one["global_step"] == two["global_step"] == STEPS
    # Two micro-batches per step in one process, one per step on each of two ranks.
    batches = [c["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"] for c in (one, two)]
    assert batches == [2 * STEPS, STEPS]
    a, b = one["state_dict"], two["state_dict"]
    assert a.keys() == b.keys() and a
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5
    # ...and training moved them: equal because both learned the same thing, not because neither did.
    initial_b = [k for k in a if "lora_B" in k]
    assert initial_b and all(a[k].abs().max() > 0 for k in initial_b)
    assert torch.isfinite(torch.cat([v.flatten() for v in b.values()])).all()


@pytest.mark.parametrize("name, strategy", [("ddp", DDPStrategy), ("fsdp_qlora", FSDPStrategy)])
def test_scale_out_configs_stack_on_the_recipe_and_build_their_strategy(name, strategy, capsys):
    recipe, override = REPO / "configs" / "falcon7b_qlora.yaml", REPO / "configs" / f"{name}.yaml"
    with pytest.raises(SystemExit) as done:
        cli_main(["fit", "--config", str(recipe), "--config", str(override), "--print_config"])
    assert done.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["trainer"]["devices"] * config["data"]["batch_size"] * config["trainer"]["accumulate_grad_batches"] \
        == 64  # the recipe's global batch of 8 x 8 on one GPU
    # The strategy node builds (without GPUs: only the object, not the processes).
    parser = ArgumentParser()
    parser.add_argument("--strategy", type=Strategy)
    built = parser.instantiate(parser.parse_object({"strategy": config["trainer"]["strategy"]})).strategy
    assert type(built) is strategy
    if strategy is FSDPStrategy:
        # FSDP shards by dtype: 4-bit storage must be the compute dtype; names must survive.
        assert config["model"]["quant_storage"] == config["model"]["compute_dtype"] == "bfloat16"
        assert built.kwargs["use_orig_params"] is True
        from transformers.models.falcon.modeling_falcon import FalconDecoderLayer

        assert built.kwargs["auto_wrap_policy"]._module_classes == {FalconDecoderLayer}


def test_adapter_only_checkpoints_see_through_layer_wrappers():
    """FSDP (`_fsdp_wrapped_module.`) and activation checkpointing (`_checkpoint_wrapped_module.`)
    add a segment to parameter names that state_dict keys do not have; the adapters of a
    wrapped layer must still be kept in the checkpoint."""
    module = FalconLoRAModule(lora_dropout=0.0)
    module.build("cpu")
    layers = module.model.base_model.model.transformer.h
    layers[0] = checkpoint_wrapper(layers[0])
    assert any("_checkpoint_wrapped_module" in name for name, _ in module.named_parameters())
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    kept = set(checkpoint["state_dict"])
    assert kept == module.trainable_state_keys()
    assert any(key.startswith("model.base_model.model.transformer.h.0.") and "lora_A" in key for key in kept)
    assert len(kept) == 4 * 2 * len(layers)  # 4 target layers x (A, B) per decoder layer
