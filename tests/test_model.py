import json
import warnings

import bitsandbytes as bnb
import pytest
import torch
from transformers import AutoModelForCausalLM

from mh_lightning import tiny
from mh_lightning.model import (
    DEFAULT_LORA_TARGETS,
    ModelLoadError,
    add_lora,
    check_quantized,
    decoder_linears,
    keep_cpu_4bit_weights_trainable,
    load_base_model,
    load_tokenizer,
)

pytestmark = pytest.mark.slow  # each test builds and quantizes tiny models


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return tiny.build(tmp_path_factory.mktemp("tiny") / "model")


def test_tiny_model_has_falcon_7b_flags(tiny_folder):
    config = json.loads((tiny_folder / "config.json").read_text())
    assert config["model_type"] == "falcon"
    flags = (config["multi_query"], config["parallel_attn"], config["bias"], config["alibi"])
    assert flags == (True, True, False, False)
    assert config["new_decoder_architecture"] is False


def test_tiny_model_is_deterministic(tmp_path, tiny_folder):
    again = tiny.build(tmp_path / "again")
    a = AutoModelForCausalLM.from_pretrained(tiny_folder).state_dict()
    b = AutoModelForCausalLM.from_pretrained(again).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (again / "tokenizer.json").read_text() == (tiny_folder / "tokenizer.json").read_text()


def test_tokenizer_pads_with_eos_and_emits_no_token_type_ids():
    tokenizer = load_tokenizer("builtin:tiny-falcon")
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"
    assert "token_type_ids" not in tokenizer("<HUMAN>: hi")


@pytest.mark.parametrize(("quantization", "layer"), [("nf4", bnb.nn.Linear4bit), ("fp4", bnb.nn.Linear4bit)])
def test_decoder_linears_are_bitsandbytes_layers(tiny_folder, quantization, layer):
    model = load_base_model(str(tiny_folder), quantization, "float32")
    linears = decoder_linears(model)
    assert len(linears) == 2 * len(DEFAULT_LORA_TARGETS)  # two layers, four linears each
    assert all(type(m) is layer for m in linears.values())
    assert {m.weight.quant_type for m in linears.values()} == {quantization}


def test_unquantized_model_is_refused_with_a_clear_message(tiny_folder):
    model = load_base_model(str(tiny_folder), "none", "float32")
    with pytest.raises(ModelLoadError) as err:
        check_quantized(model, "nf4")
    message = str(err.value)
    assert message.startswith("quantization=nf4 was asked for, but the decoder's linear layers are not Linear4bit: "
                              "transformer.h.0.self_attention.query_key_value (FalconLinear)")
    assert "transformers 5.x skips Falcon's FalconLinear" in message


def test_legacy_refinedweb_folder_loads_as_native_falcon(tmp_path, tiny_folder):
    """Old sharded Falcon checkpoints carry the custom-code RefinedWebModel config."""
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for f in tiny_folder.iterdir():
        (legacy / f.name).write_bytes(f.read_bytes())
    native = json.loads((tiny_folder / "config.json").read_text())
    old = {
        "model_type": "RefinedWebModel",
        "architectures": ["RWForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_RW.RWConfig", "AutoModelForCausalLM": "modelling_RW.RWForCausalLM"},
        "hidden_size": native["hidden_size"],
        "n_head": native["num_attention_heads"],
        "n_layer": native["num_hidden_layers"],
        "vocab_size": native["vocab_size"],
        "multi_query": True, "parallel_attn": True, "bias": False, "alibi": False,
        "bos_token_id": native["bos_token_id"], "eos_token_id": native["eos_token_id"],
        "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
    }
    (legacy / "config.json").write_text(json.dumps(old))
    ids = torch.tensor([[5, 17, 99, 3, 250]])
    loaded = load_base_model(str(legacy), "none", "float32")
    reference = load_base_model(str(tiny_folder), "none", "float32")
    assert type(loaded).__name__ == "FalconForCausalLM"
    assert torch.allclose(loaded(ids).logits, reference(ids).logits, atol=0, rtol=0)
    quantized = load_base_model(str(legacy), "nf4", "float32")  # and it quantizes like the native one
    assert all(isinstance(m, bnb.nn.Linear4bit) for m in decoder_linears(quantized).values())


def test_lora_makes_only_adapters_trainable(tiny_folder):
    model = add_lora(load_base_model(str(tiny_folder), "nf4", "float32"), r=4, alpha=8, dropout=0.0)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(trainable) == 2 * 2 * len(DEFAULT_LORA_TARGETS)  # A and B, 4 targets, 2 layers
    assert all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert model.base_model.model.config.use_cache is False
    hidden = 128
    qkv_a = model.get_parameter("base_model.model.transformer.h.0.self_attention.query_key_value.lora_A.default.weight")
    assert qkv_a.shape == (4, hidden)


def test_multi_query_keys_reach_sdpa_with_every_head_and_the_same_numbers(tiny_folder, monkeypatch):
    """Without a KV cache the single key/value head is repeated across the query heads (so SDPA
    may use a fused kernel with a packing mask); loss and gradients stay those of the broadcast."""
    from mh_lightning.batching import pack_batch
    from mh_lightning.data import IGNORE_INDEX, TokenizedExample

    reference = load_base_model(str(tiny_folder), quantization="none", compute_dtype="float32",
                                expand_kv_heads=False)  # attention as transformers builds it
    expanded = load_base_model(str(tiny_folder), quantization="none", compute_dtype="float32")
    layers = reference.config.num_hidden_layers
    heads = reference.config.num_attention_heads
    assert heads > 1 and expanded.transformer.h[0].self_attention.num_kv_heads == 1

    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording(query, key, value, *args, **kwargs):
        seen.append((query.shape[1], key.shape[1], value.shape[1]))
        return sdpa(query, key, value, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    examples = [TokenizedExample(list(range(5, 5 + n)), [IGNORE_INDEX] * 3 + list(range(8, 5 + n)), False)
                for n in (9, 6, 12)]
    batch = pack_batch(examples, pad_id=0, max_length=16, ignore_index=IGNORE_INDEX)
    batch.pop("num_tokens")
    losses, grads = [], []
    for model in (reference, expanded):
        model.train()
        seen.clear()
        torch.manual_seed(0)
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        losses.append(loss.item())
        grads.append(model.transformer.h[0].self_attention.query_key_value.weight.grad.clone())
        # the expanded model on the CPU: one causal call per block (rows 12+pad and 9+6: 4 blocks)
        assert seen == ([(heads, 1, 1)] * layers if model is reference else [(heads, heads, heads)] * 4 * layers)
    assert abs(losses[0] - losses[1]) <= 1e-6
    assert (grads[0] - grads[1]).abs().max().item() <= 1e-6

    # generation caches one key/value head, as the model was built: the same greedy text
    prompt = torch.tensor([[5, 6, 7, 8]])
    outputs = []
    for model in (reference, expanded):
        model.eval()
        seen.clear()
        outputs.append(model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0))
        assert {shape[1] for shape in seen} == {1}
    assert torch.equal(outputs[0], outputs[1])


# -- bitsandbytes' AVX512-BF16 CPU repacking (docs/bnb_avx512bf16.md) --------------------------
def repacked_path_runs_here() -> str | None:
    """None when a `Linear4bit` with bitsandbytes' CPU repacking switched on runs its repacked
    (no-backward) path on this CPU, else why not."""
    layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=torch.float32, quant_type="nf4").to("cpu")
    layer.support_avx512bf16_for_cpu = True  # what bitsandbytes sets by itself on an AVX512_BF16 CPU
    try:
        layer.eval()
        with torch.no_grad():
            layer(torch.ones(2, 64))
        layer.train()
        with warnings.catch_warnings():  # the "no autograd kernel" warning this path is known for
            warnings.simplefilter("ignore")
            layer(torch.ones(2, 64, requires_grad=True)).sum().backward()
    except Exception as err:  # noqa: BLE001 - any failure means the kernel cannot run on this CPU
        return f"bitsandbytes' repacked 4-bit CPU kernel does not run on this CPU ({err!r})"
    if not layer.weight.quant_state.packing_format_for_cpu:
        return "bitsandbytes no longer repacks 4-bit weights in an eval forward without gradients"
    return None


def dequantized(layer: torch.nn.Module) -> torch.Tensor:
    return bnb.functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state).float()


@pytest.mark.slow
def test_lora_gradients_after_an_eval_forward_match_the_dequantized_fp32_model(tiny_folder, monkeypatch):
    """On an AVX512_BF16 CPU, bitsandbytes 0.50.2 repacked every 4-bit weight at the first eval
    forward without gradients (Lightning's sanity check) and then trained through a kernel with
    no backward: the LoRA gradients were wrong and every state_dict() drifted the base weights.
    Elsewhere the switch is forced on, as that CPU sets it, so the test means the same on any CPU."""
    reason = repacked_path_runs_here()
    if reason:
        pytest.skip(reason)
    monkeypatch.setattr(bnb.nn.modules, "has_avx512bf16", lambda: True)  # every new Linear4bit opts in
    quantized = load_base_model(str(tiny_folder), "nf4", "float32")
    dense = load_base_model(str(tiny_folder), "none", "float32")
    layers = decoder_linears(quantized)  # the same Linear4bit objects become peft's base layers
    base_weights = {name: dequantized(layer) for name, layer in layers.items()}
    saved = {name: {k: v.clone() for k, v in layer.state_dict().items()} for name, layer in layers.items()}
    with torch.no_grad():
        for name, weight in base_weights.items():  # the same base weights, in dense fp32 layers
            dense.get_submodule(name).weight.copy_(weight)

    torch.manual_seed(0)
    models = [add_lora(quantized, r=4, alpha=8, dropout=0.0), add_lora(dense, r=4, alpha=8, dropout=0.0,
                                                                       quantized=False)]
    lora = {k: torch.randn_like(v) * 0.1 for k, v in models[0].state_dict().items() if "lora_" in k}
    for model in models:  # B is zero at init, which would hide A's gradient: the same random adapters
        model.load_state_dict(lora, strict=False)
    ids = torch.randint(0, quantized.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(1))

    grads = []
    for model in models:
        model.eval()
        with torch.no_grad():
            model(input_ids=ids)  # as Lightning's sanity check and validation do
        model.train()
        model(input_ids=ids, labels=ids).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})

    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == 16
    for name in grads[0]:
        got, want = grads[0][name], grads[1][name]
        # The same fp32 products (bitsandbytes' gemm_4bit dequantizes, then a dense linear), maybe
        # summed in another order by another BLAS call: each sum of n <= 512 terms rounds within
        # n * 2**-24 = 3e-5 of its size, and two layers of backward compound that; 1e-4 of the
        # gradient's size is above it and far below the 0.35-1.0 relative error of the dropped
        # input gradient (measured here: 0.0 with the fix, 0.68 without).
        assert (got - want).abs().max() <= 1e-4 * want.abs().max(), name
    for name, layer in layers.items():
        assert not getattr(layer.weight.quant_state, "packing_format_for_cpu", False), name  # never repacked
        after = layer.state_dict()  # what every checkpoint save calls: the base weights round-trip exactly
        assert after.keys() == saved[name].keys() and all(torch.equal(after[k], saved[name][k]) for k in after)
        assert torch.equal(dequantized(layer), base_weights[name]), name


def test_a_model_already_repacked_for_the_cpu_kernel_is_refused(tiny_folder):
    reason = repacked_path_runs_here()
    if reason:
        pytest.skip(reason)
    model = load_base_model(str(tiny_folder), "nf4", "float32")
    layer = model.get_submodule("transformer.h.1.mlp.dense_4h_to_h")
    layer.support_avx512bf16_for_cpu = True
    layer.eval()
    with torch.no_grad():
        layer(torch.ones(1, layer.in_features))  # repacks it, as an eval forward did before the fix
    with pytest.raises(ModelLoadError) as err:
        keep_cpu_4bit_weights_trainable(model)
    assert str(err.value).startswith("1 4-bit layer(s), first transformer.h.1.mlp.dense_4h_to_h, hold weights "
                                     "repacked for bitsandbytes' AVX512-BF16 CPU kernel, which has no backward pass")
