"""The project's errors: mistakes a user can fix, each message naming the file, row, key or flag
and the fix. Every entry point prints one as a single `error: ...` line and exits with code 2
(`--debug` shows its traceback); any other exception is a bug and shows its traceback."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Sequence

EXIT_USAGE = 2
DEBUG_FLAG = "--debug"


class MHLightningError(Exception):
    """Base class of every error a user can cause and fix."""


class UsageError(MHLightningError, ValueError):
    """Bad input on the command line or in an input file; the message says what and where."""


class DataError(MHLightningError, ValueError):
    """The data cannot be used as given; the message names the file, row and fix."""


class SettingsError(MHLightningError, ValueError):
    """A model setting is out of range or contradicts another; the message names the key."""


class ModelLoadError(MHLightningError, RuntimeError):
    """The base model could not be loaded as asked; the message says why and what to do."""


class CheckpointError(MHLightningError, ValueError):
    """A checkpoint is missing, unreadable or not one of ours; the message names the file."""


class NonFiniteLossError(MHLightningError, RuntimeError):
    """The loss became NaN or infinite; the message names the step, the batch and the saved state."""


class OutOfMemoryHint(MHLightningError, RuntimeError):
    """The GPU ran out of memory; the message names the config keys that use less."""


def one_line(err: BaseException | str) -> str:
    """The message on one line: its lines joined by "; " (or a space after a colon)."""
    text = ""
    for line in str(err).splitlines():
        line = " ".join(line.split())
        if line:
            text += ("" if not text else " " if text.endswith(":") else "; ") + line
    return text or type(err).__name__


def run_command(main: Callable[[list[str]], int], argv: Sequence[str] | None) -> int:
    """Run a subcommand: a project error becomes one `error: ...` line on stderr and exit code 2
    (with `--debug`, its traceback too); any other exception is a bug and shows its traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    argv = [a for a in argv if a != DEBUG_FLAG]
    try:
        return main(argv)
    except MHLightningError as err:
        if debug:
            traceback.print_exc()
        print(f"error: {one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
