"""What every subcommand shares: one parser class, one flag style, `--config` files, one error
policy, and the option groups of the commands that load a model.

Flags are jsonargparse's, built from typed dataclasses whose docstrings become `--help`:
underscores and dotted sections (`--max_new_tokens`, `--data.val_fraction`). The dashed
spellings of earlier versions (`--max-new-tokens`, `--no-safety`) are rewritten before parsing,
and a bare boolean flag (`--greedy`) means true.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, TypeVar

import yaml
from jsonargparse import ArgumentParser, DefaultHelpFormatter, Namespace

from mh_lightning.errors import DEBUG_FLAG, UsageError, one_line, run_command
from mh_lightning.inference.generation import Answer, GenerationConfig, prompt_budget
from mh_lightning.inference.loading import LoadedModel, default_device, load_base_only, load_model
from mh_lightning.model.base import DType, Quantization
from mh_lightning.safety import DEFAULT_REGION, NO_SAFETY_WARNING, SafetyGuard, enforce_offline

T = TypeVar("T")
BOOL_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0"}
# The top-level keys of a `fit` yaml: a subcommand that has no use for one ignores it.
FIT_KEYS = {"seed_everything", "trainer", "model", "data", "ckpt_path", "checkpoint", "step_checkpoint", "samples",
            "grad_norm", "throughput", "optimizer", "lr_scheduler"}


class HelpFormatter(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """jsonargparse's help, with the description's examples kept as written."""


class Parser(ArgumentParser):
    """A jsonargparse parser whose mistakes are one `UsageError` line, not a page of usage."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        raise UsageError(f"{one_line(message)} (see {self.prog} --help)") from None


def new_parser(prog: str, description: str | None) -> Parser:
    parser = Parser(prog=prog, description=description, formatter_class=HelpFormatter)
    parser.add_argument("--config", action="append", default=[],
                        help="a yaml file of these flags, or the yaml that trained the run (the sections this "
                             "command does not use are ignored); repeat to stack files, flags win")
    parser.add_argument(DEBUG_FLAG, action="store_true", help="show the traceback of an error, not one line")
    return parser


def entry_point(run: Callable[[list[str]], int]) -> Callable[[Sequence[str] | None], int]:
    """A subcommand's `main(argv=None)`: `run` under the one error policy (a mistake a user can fix
    is one `error: ...` line and exit code 2; anything else shows its traceback)."""

    def main(argv: Sequence[str] | None = None) -> int:
        return run_command(run, argv)

    return main


def moved_names(library: ModuleType) -> Callable[[str], Any]:
    """A module `__getattr__` for a subcommand whose library part moved to `library`: the names the
    module held before (`from mh_lightning.chat import fit_history`) keep working."""

    def find(name: str) -> Any:
        return getattr(library, name)

    return find


# -- flags and config files ----------------------------------------------------------------
def _option_kinds(parser: ArgumentParser) -> tuple[set[str], set[str]]:
    """(every option string, the options that take a boolean)."""
    options, booleans = set(), set()
    for action in parser._actions:
        options.update(action.option_strings)
        if getattr(action, "_typehint", None) is bool:
            booleans.update(action.option_strings)
    return options, booleans


def normalise_flags(parser: ArgumentParser, argv: Sequence[str]) -> list[str]:
    """`--max-new-tokens` -> `--max_new_tokens` (known options only); a bare `--greedy` -> `--greedy true`."""
    options, booleans = _option_kinds(parser)
    out: list[str] = []
    for i, token in enumerate(argv):
        if token.startswith("--") and token not in options:
            key, sep, value = token.partition("=")
            underscored = "--" + key[2:].replace("-", "_")
            if underscored in options:
                token = underscored + sep + value
        out.append(token)
        following = argv[i + 1] if i + 1 < len(argv) else None
        if token in booleans and (following is None or following.lower() not in BOOL_WORDS):
            out.append("true")
    return out


def sections(parser: ArgumentParser) -> set[str]:
    """The dotted sections of a parser (`data` for `--data.path`)."""
    return {action.dest.split(".")[0] for action in parser._actions if "." in action.dest}


def read_config(path: str) -> dict[str, Any]:
    """The top-level mapping of the yaml file given to --config (an empty file is an empty mapping)."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--config {path}: file not found")
    try:
        loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UsageError(f"--config {path}: not a readable yaml file ({one_line(err)})") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"--config {path}: expected a mapping of keys (data:, model:, max_new_tokens: ...)")
    return loaded


def apply_config_file(parser: ArgumentParser, path: str) -> None:
    """Make the values of a yaml file the parser's defaults (flags still win)."""
    loaded = read_config(path)
    dests = {action.dest for action in parser._actions}
    known_sections = sections(parser)
    for key, value in loaded.items():
        if key in known_sections:
            if not isinstance(value, dict):
                raise UsageError(f"--config {path}: the {key}: section must be a mapping")
            for name, item in value.items():
                _set_default(parser, f"{key}.{name}", item, path)
        elif key in dests and key not in ("config", "debug") and not (key in FIT_KEYS and isinstance(value, dict)):
            _set_default(parser, key, value, path)
        elif key not in FIT_KEYS:
            raise UsageError(f"--config {path}: unknown key {key!r} (see {parser.prog} --help for the known keys)")


def _set_default(parser: ArgumentParser, key: str, value: Any, path: str) -> None:
    given = Namespace()
    given[key] = value
    try:  # types first: set_defaults checks none, and a default is not checked when parsing
        parser.validate(given, skip_required=True)
        parser.set_defaults({key: value})
    except KeyError as err:
        section = key.split(".")[0]
        raise UsageError(f"--config {path}: {key} is not a setting of {section} ({one_line(err)}); "
                         "see --help for the known keys") from None
    except (TypeError, ValueError) as err:
        message = one_line(err).removeprefix(f'Parser key "{key}": ').replace("<class '", "").replace("'>", "")
        raise UsageError(f"--config {path}: {key}: {message} (see {parser.prog} --help)") from None


def config_paths(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the files given to `--config`, in order; the other arguments)."""
    configs, rest = [], []
    tokens = iter(argv)
    for token in tokens:
        if token == "--config":
            path = next(tokens, None)
            if path is None:
                raise UsageError("--config needs a file name")
            configs.append(path)
        elif token.startswith("--config="):
            configs.append(token.partition("=")[2])
        else:
            rest.append(token)
    return configs, rest


def parse(parser: ArgumentParser, argv: Sequence[str]) -> Namespace:
    """Parse `argv` after the `--config` files it names, in order (later files and flags win)."""
    configs, rest = config_paths(normalise_flags(parser, argv))
    for path in configs:
        apply_config_file(parser, path)
    return parser.parse_args(rest)


def take(cls: type[T], config: Namespace, **given: Any) -> T:
    """The dataclass `cls` filled from the parsed values of its fields (`given` ones aside)."""
    values = {f.name: given[f.name] if f.name in given else config[f.name] for f in fields(cls)}
    return cls(**values)


# -- output ----------------------------------------------------------------------------------
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


def report(answers: Sequence[Answer]) -> None:
    """Token counts and speed on stderr (--verbose)."""
    for a in answers:
        print(f"prompt tokens: {a.prompt_tokens}, new tokens: {a.new_tokens}, stop: {a.stop_reason}",
              file=sys.stderr)
    seconds = sum(a.seconds for a in answers)
    new = sum(a.new_tokens for a in answers)
    print(f"{new} new tokens in {seconds:.2f} s: {new / max(seconds, 1e-9):.1f} tokens/s", file=sys.stderr)


# -- option groups -------------------------------------------------------------------------
@dataclass
class ModelOptions:
    """Model

    Args:
        checkpoint: a Lightning checkpoint (.ckpt) of this project or a folder written by export.
        base_only: run the base model of --model without an adapter.
        model: with --base_only, the model to run; with --checkpoint, a local copy of the base model
            the checkpoint was trained on.
        quantization: with --base_only, how to load the base.
        compute_dtype: with --base_only, the compute dtype (default: bfloat16 on a GPU, float32 on the CPU).
        device: where to run (default: cuda when available, else cpu).
    """

    checkpoint: Path | None = None
    base_only: bool = False
    model: str | None = None
    quantization: Quantization = "nf4"
    compute_dtype: DType | None = None
    device: str = default_device()

    def load(self) -> LoadedModel:
        """The model of --checkpoint, or the bare base of --base_only --model."""
        if (self.checkpoint is None) == (not self.base_only):
            raise UsageError("give either --checkpoint PATH or --base_only --model NAME_OR_PATH")
        if self.checkpoint is not None:
            return load_model(self.checkpoint, self.device, self.model)
        if not self.model:
            raise UsageError("--base_only needs --model NAME_OR_PATH")
        return load_base_only(self.model, self.quantization, self.compute_dtype, self.device)


@dataclass
class SamplingOptions:
    """Generation (the recipe's sampling by default)

    Args:
        max_new_tokens: longest answer in tokens.
        temperature: sampling temperature.
        top_p: nucleus sampling threshold (top_k is off).
        greedy: always take the most likely token (no sampling).
        repetition_penalty: 1.0 is off.
        num_return_sequences: answers per question.
        seed: sampling seed: the same seed gives the same text on the same machine.
        max_context: tokens of prompt + answer (default: the model's limit, 2048 for Falcon-7B).
    """

    max_new_tokens: int = GenerationConfig.max_new_tokens
    temperature: float = GenerationConfig.temperature
    top_p: float = GenerationConfig.top_p
    greedy: bool = GenerationConfig.greedy
    repetition_penalty: float = GenerationConfig.repetition_penalty
    num_return_sequences: int = GenerationConfig.num_return_sequences
    seed: int | None = None
    max_context: int | None = None

    def config(self) -> GenerationConfig:
        """The settings, checked before any model is loaded."""
        try:
            config = GenerationConfig(self.max_new_tokens, self.temperature, self.top_p, self.greedy,
                                      self.repetition_penalty, self.num_return_sequences, self.seed)
            if self.max_context is not None:
                prompt_budget(self.max_context, config.max_new_tokens)
        except ValueError as err:
            raise UsageError(f"{err} (see --help)") from None
        return config


@dataclass
class SafetyOptions:
    """Safety

    Args:
        region: whose crisis resources to show (the regions of resources/crisis_resources.yaml).
        no_safety: research only: no crisis screening, answer filtering or resources (prints a warning).
    """

    region: str = DEFAULT_REGION
    no_safety: bool = False

    def guard(self) -> SafetyGuard:
        """The guard, built before the model so a bad --region fails at once; goes offline too:
        nothing typed or generated leaves this machine."""
        enforce_offline()
        try:
            guard = SafetyGuard(self.region, enabled=not self.no_safety)
        except ValueError as err:  # the resources file or the region: named in the message
            raise UsageError(f"--region {self.region}: {one_line(err)}") from None
        if self.no_safety:
            print(NO_SAFETY_WARNING, file=sys.stderr)
        return guard


def load_guarded(args: Namespace) -> tuple[LoadedModel, SafetyGuard]:
    """What generate and chat set up from their parsed flags: the safety guard first (a bad
    --region fails before minutes of loading), then quiet output and the model, with the guard
    told the prompt style the checkpoint was trained with (to neutralise its turn markers)."""
    guard = take(SafetyOptions, args).guard()
    setup_cli()
    model, tokenizer, style, metadata = take(ModelOptions, args).load()
    guard.style = style
    return LoadedModel(model, tokenizer, style, metadata), guard


def inference_parser(prog: str, description: str | None) -> Parser:
    """A parser with the model, generation and safety options of generate and chat."""
    parser = new_parser(prog, description)
    parser.add_class_arguments(ModelOptions, None)
    parser.add_class_arguments(SamplingOptions, None)
    parser.add_class_arguments(SafetyOptions, None)
    return parser
