"""Answer questions with a trained checkpoint, in the exact prompt format it was trained on.

    mh-lightning generate --checkpoint runs/tiny_cpu/checkpoints/last.ckpt --prompt "Why am I sad?"
    mh-lightning generate --checkpoint EXPORTED_DIR --prompts_file questions.txt --out answers.jsonl
    mh-lightning generate --base_only --model tiiuae/falcon-7b-instruct --prompt "..."

Only the answer goes to stdout; `--verbose` adds token counts and speed on stderr. The
model (base, quantization, LoRA, prompt style) is rebuilt from what the checkpoint saved.
The safety guard sees each question before the model (turn markers neutralised; a crisis
message gets the crisis reply with resources first) and each answer before it is shown.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mh_lightning.cli.common import (
    Parser,
    SamplingOptions,
    entry_point,
    inference_parser,
    load_guarded,
    parse,
    report,
    take,
)
from mh_lightning.errors import UsageError
from mh_lightning.inference.generation import generate_answers
from mh_lightning.safety import InputDecision, SafetyGuard

__all__ = ["GenerateOptions", "build_parser", "main", "safe_reply", "safety_label"]


@dataclass
class GenerateOptions:
    """Questions and answers

    Args:
        prompt: one question: only its answer is printed.
        prompts_file: a text file with one question a line.
        out: with --prompts_file, the JSONL file of answers (default: stdout).
        batch_size: questions generated together.
        verbose: token counts and tokens/s on stderr.
    """

    prompt: str | None = None
    prompts_file: Path | None = None
    out: Path | None = None
    batch_size: int = 8
    verbose: bool = False

    def questions(self) -> list[str]:
        if (self.prompt is None) == (self.prompts_file is None):
            raise UsageError("give one of --prompt TEXT or --prompts_file FILE")
        if self.prompt is not None:
            if not self.prompt.strip():
                raise UsageError("--prompt is empty: give the question to answer")
            return [self.prompt.strip()]
        path = self.prompts_file
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"--prompts_file {path}: cannot read it ({type(err).__name__}: {err})") from None
        questions = [line.strip() for line in lines if line.strip()]
        if not questions:
            raise UsageError(f"--prompts_file {path}: no questions (one question a line; the file is empty)")
        return questions

    def check(self) -> None:
        if self.out is not None and self.prompts_file is None:
            raise UsageError("--out goes with --prompts_file; --prompt prints its answer")
        if self.out is not None and not self.out.parent.is_dir():
            raise UsageError(f"--out {self.out}: the folder {self.out.parent} does not exist")
        if self.batch_size < 1:
            raise UsageError(f"--batch_size must be at least 1, got {self.batch_size}")


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


def build_parser() -> Parser:
    parser = inference_parser("mh-lightning generate", __doc__)
    parser.add_class_arguments(GenerateOptions, None)
    return parser


def _main(argv: list[str]) -> int:
    args = parse(build_parser(), argv)
    options, sampling = take(GenerateOptions, args), take(SamplingOptions, args)
    questions = options.questions()
    config = sampling.config()
    options.check()
    (model, tokenizer, style, _), guard = load_guarded(args)
    decisions = [guard.check_input(q) for q in questions]  # the one place safety sees the input
    prompts = [style.prompt(d.prompt_text) for d in decisions]
    answers = generate_answers(model, tokenizer, prompts, config, style, options.batch_size, sampling.max_context)
    if options.verbose:
        report(answers)
    n = config.num_return_sequences
    screened = [guard.check_output(a.text) for a in answers]  # the one place safety sees the output
    if options.prompt is not None:
        print(safe_reply(decisions[0], screened))
        return 0
    rows = [{"question": questions[i // n], "sequence": i % n,
             "answer": safe_reply(decisions[i // n], [shown]),
             "safety": safety_label(guard, decisions[i // n], a.text, shown), "stop_reason": a.stop_reason,
             "prompt_tokens": a.prompt_tokens, "new_tokens": a.new_tokens}
            for i, (a, shown) in enumerate(zip(answers, screened, strict=True))]
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if options.out is None:
        sys.stdout.write(lines)
    else:
        options.out.write_text(lines, encoding="utf-8")
    return 0


main = entry_point(_main)


if __name__ == "__main__":
    sys.exit(main())
