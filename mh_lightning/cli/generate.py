"""Answer questions with a trained checkpoint, in the exact prompt format it was trained on.

    python -m mh_lightning.generate --checkpoint runs/tiny_cpu/checkpoints/last.ckpt --prompt "Why am I sad?"
    python -m mh_lightning.generate --checkpoint EXPORTED_DIR --prompts-file questions.txt --out answers.jsonl
    python -m mh_lightning.generate --base-only --model tiiuae/falcon-7b-instruct --prompt "..."

Only the answer goes to stdout; `--verbose` adds token counts and speed on stderr. The
model (base, quantization, LoRA, prompt style) is rebuilt from what the checkpoint saved.
The safety guard sees each question before the model (turn markers neutralised; a crisis
message gets the crisis reply with resources first) and each answer before it is shown.
This module also holds the options and error handling that chat and export share.
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch

from mh_lightning.inference.generation import Answer, GenerationConfig, generate_answers, prompt_budget
from mh_lightning.prompts import DEFAULT_STYLE, PromptStyle
from mh_lightning.safety import DEFAULT_REGION, NO_SAFETY_WARNING, InputDecision, SafetyGuard, enforce_offline

EXIT_USAGE = 2


class UsageError(ValueError):
    """Bad input on the command line or in an input file; the message says what and where."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse prints the whole usage block by default
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# -- options shared by generate, chat and export -------------------------------------------
def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    source = group.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path,
                        help="a Lightning checkpoint (.ckpt) of this project or a folder from mh_lightning.export")
    source.add_argument("--base-only", action="store_true", help="run the base model of --model without an adapter")
    group.add_argument("--quantization", choices=["nf4", "fp4", "int8", "none"], default="nf4",
                       help="with --base-only: how to load the base (default: nf4)")
    group.add_argument("--model", help="with --base-only: the model to run; with --checkpoint: a local copy "
                                       "of the base model the checkpoint was trained on")
    group.add_argument("--compute-dtype", choices=["bfloat16", "float16", "float32"],
                       help="with --base-only: compute dtype (default: bfloat16 on a GPU, float32 on the CPU)")
    group.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                       help="where to run (default: cuda when available, else cpu)")


def add_generation_args(parser: argparse.ArgumentParser) -> None:
    d = GenerationConfig()
    group = parser.add_argument_group("generation")
    group.add_argument("--max-new-tokens", "--max_new_tokens", dest="max_new_tokens", type=int,
                       default=d.max_new_tokens, help=f"longest answer in tokens (default: {d.max_new_tokens})")
    group.add_argument("--temperature", type=float, default=d.temperature, help=f"(default: {d.temperature})")
    group.add_argument("--top-p", "--top_p", dest="top_p", type=float, default=d.top_p, help=f"(default: {d.top_p})")
    group.add_argument("--greedy", action="store_true", help="always take the most likely token (no sampling)")
    group.add_argument("--repetition-penalty", "--repetition_penalty", dest="repetition_penalty", type=float,
                       default=d.repetition_penalty, help=f"(default: {d.repetition_penalty}, off)")
    group.add_argument("--num-return-sequences", "--num_return_sequences", dest="num_return_sequences", type=int,
                       default=d.num_return_sequences, help="answers per question (default: 1)")
    group.add_argument("--seed", type=int, help="sampling seed: the same seed gives the same text")
    group.add_argument("--max-context", "--max_context", dest="max_context", type=int,
                       help="tokens of prompt + answer (default: the model's limit, 2048 for Falcon-7B)")


def add_safety_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("safety")
    group.add_argument("--region", default=DEFAULT_REGION,
                       help="whose crisis resources to show (the regions of resources/crisis_resources.yaml; "
                            f"default: {DEFAULT_REGION})")
    group.add_argument("--no-safety", "--no_safety", dest="no_safety", action="store_true",
                       help="research only: no crisis screening, answer filtering or resources (prints a warning)")


def safety_guard(args: argparse.Namespace) -> SafetyGuard:
    """The guard, built before the model so a bad --region fails at once; goes offline too:
    nothing typed or generated leaves this machine."""
    enforce_offline()
    guard = SafetyGuard(args.region, enabled=not args.no_safety)
    if args.no_safety:
        print(NO_SAFETY_WARNING, file=sys.stderr)
    return guard


def generation_config(args: argparse.Namespace) -> GenerationConfig:
    """The settings of the generation flags, checked before any model is loaded."""
    try:
        config = GenerationConfig(args.max_new_tokens, args.temperature, args.top_p, args.greedy,
                                  args.repetition_penalty, args.num_return_sequences, args.seed)
        if args.max_context is not None:
            prompt_budget(args.max_context, config.max_new_tokens)
    except ValueError as err:
        raise UsageError(f"{err} (see --help)") from None
    return config


def load_model(args: argparse.Namespace) -> tuple[torch.nn.Module, Any, PromptStyle, dict[str, Any]]:
    """(model, tokenizer, style, metadata) for --checkpoint or --base-only --model."""
    from mh_lightning.model.checkpoint import load_for_inference

    if args.checkpoint is not None:
        overrides = {"model_name": args.model} if args.model else {}
        return load_for_inference(args.checkpoint, args.device, **overrides)
    if not args.model:
        raise UsageError("--base-only needs --model NAME_OR_PATH")
    from mh_lightning.model.base import load_base_model, load_tokenizer

    dtype = args.compute_dtype or ("bfloat16" if torch.device(args.device).type == "cuda" else "float32")
    model = load_base_model(args.model, args.quantization, dtype, args.device)
    metadata = {"model_name": args.model, "quantization": args.quantization, "compute_dtype": dtype,
                "source": "base"}
    return model.eval(), load_tokenizer(args.model), DEFAULT_STYLE, metadata


def setup_cli() -> None:
    """Keep stderr for this program's own messages (library chatter hides real warnings), and
    leave no files behind: torchmetrics, imported with Lightning, loads matplotlib, which
    writes a font cache under HOME; it gets a temporary folder, removed at exit."""
    if "MPLCONFIGDIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="mh_lightning-mpl-")
        os.environ["MPLCONFIGDIR"] = folder
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    import transformers

    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s", stream=sys.stderr)


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None) -> int:
    """Run `main`; a known failure becomes one line on stderr and exit code 2, not a traceback.

    (`UsageError` and the checkpoint module's `CheckpointError` are `ValueError`s; the
    checkpoint module is not imported here, as it pulls in Lightning before `setup_cli`.)"""
    from mh_lightning.model.base import ModelLoadError

    try:
        return main(argv)
    except (ModelLoadError, OSError, ValueError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE


# -- generate ------------------------------------------------------------------------------
def read_questions(args: argparse.Namespace) -> list[str]:
    if args.prompt is not None:
        if not args.prompt.strip():
            raise UsageError("--prompt is empty: give the question to answer")
        return [args.prompt.strip()]
    path: Path = args.prompts_file
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--prompts-file {path}: cannot read it ({type(err).__name__}: {err})") from None
    questions = [line.strip() for line in lines if line.strip()]
    if not questions:
        raise UsageError(f"--prompts-file {path}: no questions (one question a line; the file is empty)")
    return questions


def report(answers: Sequence[Answer]) -> None:
    """Token counts and speed on stderr (--verbose)."""
    for a in answers:
        print(f"prompt tokens: {a.prompt_tokens}, new tokens: {a.new_tokens}, stop: {a.stop_reason}",
              file=sys.stderr)
    seconds = sum(a.seconds for a in answers)
    new = sum(a.new_tokens for a in answers)
    print(f"{new} new tokens in {seconds:.2f} s: {new / max(seconds, 1e-9):.1f} tokens/s", file=sys.stderr)


def safe_reply(decision: InputDecision, screened: Sequence[str]) -> str:
    """What the user sees: the crisis reply first (if any), the screened answers, the footer."""
    parts: list[str] = []
    for part in (decision.preface, *screened, decision.footer):
        if part and part not in parts:  # an answer screened into the crisis reply is not repeated
            parts.append(part)
    return "\n\n".join(parts)


def safety_label(guard: SafetyGuard, decision: InputDecision, answer: str, screened: str) -> str:
    if not guard.enabled:
        return "off"
    if decision.preface:
        return "crisis"
    if screened != answer:
        return "screened"
    return "informational" if decision.footer else "none"


def inference_parser(module: str, doc: str | None) -> OneLineParser:
    """A parser with the model, generation and safety options of generate and chat."""
    parser = OneLineParser(prog=f"python -m {module}", description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser)
    add_generation_args(parser)
    add_safety_args(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = inference_parser("mh_lightning.generate", __doc__)
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--prompt", help="one question: only its answer is printed")
    inputs.add_argument("--prompts-file", "--prompts_file", dest="prompts_file", type=Path,
                        help="a text file with one question a line")
    parser.add_argument("--out", type=Path, help="with --prompts-file: JSONL file of answers (default: stdout)")
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=8,
                        help="questions generated together (default: 8)")
    parser.add_argument("--verbose", action="store_true", help="token counts and tokens/s on stderr")
    return parser


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    questions = read_questions(args)
    config = generation_config(args)
    if args.out is not None and args.prompts_file is None:
        raise UsageError("--out goes with --prompts-file; --prompt prints its answer")
    if args.out is not None and not args.out.parent.is_dir():
        raise UsageError(f"--out {args.out}: the folder {args.out.parent} does not exist")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    guard = safety_guard(args)
    setup_cli()
    model, tokenizer, style, _ = load_model(args)
    guard.style = style  # neutralise the markers of the format this checkpoint was trained with
    decisions = [guard.check_input(q) for q in questions]  # the one place safety sees the input
    prompts = [style.prompt(d.prompt_text) for d in decisions]
    answers = generate_answers(model, tokenizer, prompts, config, style, args.batch_size, args.max_context)
    if args.verbose:
        report(answers)
    n = config.num_return_sequences
    screened = [guard.check_output(a.text) for a in answers]  # the one place safety sees the output
    if args.prompt is not None:
        print(safe_reply(decisions[0], screened))
        return 0
    rows = [{"question": questions[i // n], "sequence": i % n,
             "answer": safe_reply(decisions[i // n], [shown]),
             "safety": safety_label(guard, decisions[i // n], a.text, shown), "stop_reason": a.stop_reason,
             "prompt_tokens": a.prompt_tokens, "new_tokens": a.new_tokens}
            for i, (a, shown) in enumerate(zip(answers, screened, strict=True))]
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if args.out is None:
        sys.stdout.write(lines)
    else:
        args.out.write_text(lines, encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
