#!/usr/bin/env bash
# Every GPU measurement of docs/benchmarks.md in one run, within 8 minutes on one H100 or H200.
#
#   bash scripts/gpu_check.sh [--out FILE] [--data PARQUET] [--budget SECONDS] [--dry-run]
#
# Writes one JSON line per measurement to FILE (default: $OUT/gpu_check.jsonl when $OUT is set,
# else gpu_check.jsonl), each with "run" naming it:
#   versions                the image's torch/transformers/peft/bitsandbytes/... against pyproject.toml's pins
#   ours_gpu_80gb           synthetic Falcon-7B, micro-batch 8 x 8, up to 512 tokens, gpu_80gb.yaml (bf16, no checkpointing)
#   ours_recipe             the recipe as shipped (falcon7b_qlora.yaml: fp16, checkpointing): peak memory
#   hf_recipe               the recipe in the HF Trainer on the same model folder
#   trl_packing             TRL's SFTTrainer, bfd packing (padding-free), the gpu_80gb.yaml settings
#   trl_default             TRL's SFTTrainer, padded batches, the same settings
#   ours_gpu_80gb_dequantize_once   ablation: gpu_80gb.yaml + model.dequantize_once (13.8 GB more)
#   generate_tiny_*         batch-1 generation, 4-bit + adapter and merged (scripts/bench_generate.py)
# Each training run: one epoch (3 optimizer steps) of warm-up, one whole epoch measured; the JSON
# carries trained_tokens_per_s, peak_gpu_mb, mfu. The runs go in this order and one that would
# start after --budget seconds (default 480) is recorded as skipped; a failed run is recorded
# with its exit code and the check goes on.
#
# Carried wheels: when .whl/*.whl exist (the GPU machine has no package index), they are installed
# to /tmp/site first, as the device tool's notes say. The data: ../shared/data is not on the GPU
# machine; copy the parquet into an ignored folder of the checkout, carry it, and pass --data.
#
# --dry-run: on any machine, no GPU: the version check, then every command with --dry_run
# (configs and arguments checked through the training CLI's --print_config, TRL's SFTConfig
# built) or --help, each printing one JSON line into FILE. tests/test_benchmark.py runs it.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
OUT_FILE="${OUT:+$OUT/}gpu_check.jsonl"
DATA=../shared/data/mental_health_chatbot_dataset.parquet
BUDGET=480
F7B=/tmp/mh_lightning-f7b
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT_FILE="$2"; shift ;;
    --data) DATA="$2"; shift ;;
    --budget) BUDGET="$2"; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ ! -f "$DATA" ]; then
  echo "gpu_check.sh: --data $DATA: no such file; copy mental_health_chatbot_dataset.parquet into the checkout" \
       "(an ignored folder, carried) and pass its path" >&2
  exit 2
fi
mkdir -p "$(dirname "$OUT_FILE")"
: > "$OUT_FILE"

if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false

# -- the image's libraries against the pins: a number from other versions is not this project's --
python3 - "$OUT_FILE" "$DRY" <<'EOF' || exit 3
import json, re, sys
from importlib.metadata import PackageNotFoundError, version

# the package's dependencies and the bench extra (regex: the image's Python may lack tomllib)
text = open("pyproject.toml").read()
sections = re.findall(r"^(?:dependencies|bench) = \[(.*?)\]", text, flags=re.S | re.M)
pins = dict(re.findall(r'"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^";]+)"', " ".join(sections)))
found, wrong = {}, {}
for name in ["torch", *pins]:
    try:
        found[name] = version(name)
    except PackageNotFoundError:
        found[name] = None
    if name in pins and found[name] != pins[name]:
        wrong[name] = {"pinned": pins[name], "found": found[name]}
import torch

torch_ok = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 4)
line = {"run": "versions", "found": found, "wrong": wrong, "torch_ok": torch_ok,
        "cuda": torch.cuda.is_available(), "device": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
open(sys.argv[1], "a").write(json.dumps(line) + "\n")
print(json.dumps(line))
# transformers, peft and bitsandbytes decide whether QLoRA works at all (docs/): refuse other versions
fatal = {k: v for k, v in wrong.items() if k in ("transformers", "peft", "bitsandbytes")}
if fatal or not torch_ok:
    sys.exit(f"gpu_check.sh: the image does not match the pins: {fatal or 'torch < 2.4'}; carry the pinned wheels in .whl/")
if sys.argv[2] == "0" and not torch.cuda.is_available():
    sys.exit("gpu_check.sh: no CUDA device; use --dry-run on a CPU machine")
EOF

# step NAME COMMAND...: run it (or its --dry_run), add {"run": NAME} to its last stdout line
step() {
  local name="$1"; shift
  local started=$SECONDS line rc
  if [ "$DRY" = 0 ] && [ "$SECONDS" -ge "$BUDGET" ]; then
    echo "{\"run\": \"$name\", \"skipped\": \"budget of ${BUDGET}s spent\"}" | tee -a "$OUT_FILE"
    return
  fi
  echo "== $name: $*" >&2
  if [ "$DRY" = 1 ]; then
    line=$("$@" 2>/tmp/gpu_check_$name.err | tail -n 1); rc=${PIPESTATUS[0]}
  else
    line=$(timeout $((BUDGET + 120 - SECONDS)) "$@" 2>/tmp/gpu_check_$name.err | tail -n 1); rc=${PIPESTATUS[0]}
  fi
  if [ "$rc" != 0 ] || [ "${line:0:1}" != "{" ]; then
    tail -n 5 /tmp/gpu_check_$name.err >&2
    line="{\"error\": \"exit $rc\", \"log\": \"/tmp/gpu_check_$name.err\"}"
  fi
  python3 -c 'import json, sys; print(json.dumps({"run": sys.argv[1], **json.loads(sys.argv[2]), "check_s": int(sys.argv[3])}))' \
    "$name" "$line" $((SECONDS - started)) | tee -a "$OUT_FILE"
}

if [ "$DRY" = 1 ]; then X=(--dry_run); else X=(); fi
R=(--config configs/falcon7b_qlora.yaml)
G=(--config configs/falcon7b_qlora.yaml --config configs/gpu_80gb.yaml)
EPOCH=(--data.path "$DATA" --warmup_steps 3 --steps 3)
SYN=(--synthetic falcon-7b --synthetic_dir "$F7B")  # built by the first run (about 14 GB), reused after

step ours_gpu_80gb python3 scripts/benchmark.py "${G[@]}" "${SYN[@]}" "${EPOCH[@]}" "${X[@]}"
step ours_recipe python3 scripts/benchmark.py "${R[@]}" "${SYN[@]}" "${EPOCH[@]}" "${X[@]}"
step hf_recipe python3 scripts/hf_trainer_baseline.py "${R[@]}" --model "$F7B" "${EPOCH[@]}" "${X[@]}"
step trl_packing python3 scripts/trl_baseline.py "${G[@]}" --model "$F7B" --data.path "$DATA" --mode packing \
  --epochs 1 "${X[@]}"
step trl_default python3 scripts/trl_baseline.py "${G[@]}" --model "$F7B" --data.path "$DATA" --mode default \
  --epochs 1 "${X[@]}"
step ours_gpu_80gb_dequantize_once python3 scripts/benchmark.py "${G[@]}" "${SYN[@]}" "${EPOCH[@]}" \
  --model.dequantize_once true "${X[@]}"

# batch-1 generation: the tiny model trained one epoch on the GPU, then 4-bit + adapter and merged
GEN=/tmp/mh_lightning-gen_tiny
if [ "$DRY" = 1 ]; then
  python3 -m mh_lightning.fit fit --config configs/tiny_cpu.yaml --trainer.accelerator gpu --trainer.max_epochs 1 \
    --trainer.default_root_dir "$GEN" --print_config > /dev/null \
    && python3 scripts/bench_generate.py --help > /dev/null \
    && echo '{"run": "generate_tiny", "dry_run": true}' | tee -a "$OUT_FILE"
elif [ "$SECONDS" -lt "$BUDGET" ]; then
  python3 -m mh_lightning.fit fit --config configs/tiny_cpu.yaml --trainer.accelerator gpu --trainer.max_epochs 1 \
    --trainer.default_root_dir "$GEN" --trainer.enable_progress_bar false > /tmp/gpu_check_gen_fit.log 2>&1
  python3 scripts/bench_generate.py --checkpoint "$GEN/checkpoints/last.ckpt" --device cuda --max_new_tokens 256 \
    2>/tmp/gpu_check_generate.err | python3 -c 'import json, sys
for line in sys.stdin:
    if line.startswith("{"):
        print(json.dumps({"run": "generate_tiny_" + json.loads(line)["model"].replace("+", "_"), **json.loads(line)}))' \
    | tee -a "$OUT_FILE"
else
  echo '{"run": "generate_tiny", "skipped": "budget spent"}' | tee -a "$OUT_FILE"
fi
echo "gpu_check.sh: $(wc -l < "$OUT_FILE") lines in $OUT_FILE after ${SECONDS}s" >&2
