"""`mh-lightning SUBCOMMAND`: the subcommands, their help, one flag style, `--config`, and the
one error policy (a user's mistake is at most 3 lines on stderr and exit code 2; a bug shows
its traceback)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO, TINY_CONFIG

from mh_lightning import cli
from mh_lightning.cli.common import inference_parser, normalise_flags, parse

COMMANDS = ["fit", "validate", "preview", "generate", "chat", "evaluate", "export"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "mh_lightning", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)


def test_help_lists_every_subcommand(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mh-lightning {fit,validate,preview,generate,chat,evaluate,export")
    for name in COMMANDS:
        assert f"\n  {name} " in out


def test_an_unknown_subcommand_is_one_line(capsys):
    assert cli.main(["trian"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unknown subcommand 'trian'")


def test_serve_is_listed_only_where_its_module_exists():
    from importlib.util import find_spec

    try:
        present = find_spec("mh_lightning.serve.cli") is not None
    except ModuleNotFoundError:
        present = False
    assert ("serve" in cli.SUBCOMMANDS) == present


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_each_subcommand_documents_its_flags(command):
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ")
    expected = {"fit": "--data.val_fraction", "validate": "--data.val_fraction", "preview": "--data.max_length",
                "generate": "--max_new_tokens", "chat": "--save_transcript", "evaluate": "--compare_base",
                "export": "--merge"}[command]
    assert expected in result.stdout


MISTAKES = {  # subcommand: (an unknown key, a wrong type, a missing checkpoint)
    "fit": (["--data.bogus", "1"], ["--data.batch_size", "many"], ["--ckpt_path", "missing.ckpt"]),
    "validate": (["--data.bogus", "1"], ["--data.batch_size", "many"], ["--ckpt_path", "missing.ckpt"]),
    "preview": (["--data.bogus", "1"], ["--data.max_length", "long"], ["--data.path", "missing.jsonl"]),
    "generate": (["--bogus", "1"], ["--max_new_tokens", "many"], ["--checkpoint", "missing.ckpt", "--prompt", "Hi"]),
    "chat": (["--bogus", "1"], ["--max_new_tokens", "many"], ["--checkpoint", "missing.ckpt"]),
    "evaluate": (["--bogus", "1"], ["--limit", "few"], ["--checkpoint", "missing.ckpt", "--out", "eval"]),
    "export": (["--bogus", "1"], ["--merge", "maybe"], ["--checkpoint", "missing.ckpt", "--out", "out"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_mistakes_are_at_most_three_lines_and_exit_code_2(command):
    config = ["--config", str(TINY_CONFIG)] if command in ("fit", "validate") else []
    unknown, wrong_type, missing = MISTAKES[command]
    for args, needle in ((unknown, "bogus"), (wrong_type, args_value(wrong_type)), (missing, "missing")):
        result = run(command, *config, *args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert 1 <= len(lines) <= 3, (args, result.stderr[-2000:])
        assert lines[-1].startswith("error: ") and needle in lines[-1], (args, lines)


def args_value(args: list[str]) -> str:
    return args[-1]


@pytest.mark.slow
def test_a_bug_shows_its_traceback(tmp_path):
    """A KeyError raised inside a command is not a user's mistake: it keeps its traceback."""
    code = ("import sys\n"
            "from mh_lightning.cli import generate\n"
            "def broken(*args, **kwargs):\n"
            "    raise KeyError('internal')\n"
            "generate.generate_answers = broken\n"
            "from mh_lightning.cli import common\n"
            "from mh_lightning.prompts import DEFAULT_STYLE\n"
            "common.load_model = lambda *a, **k: (None, None, DEFAULT_STYLE, {})\n"
            "sys.exit(generate.main(['--checkpoint', 'x.ckpt', '--prompt', 'Hi', '--no_safety']))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr and "KeyError: 'internal'" in result.stderr


def test_debug_shows_the_traceback_of_a_users_mistake(capsys):
    from mh_lightning.cli.generate import main

    assert main(["--checkpoint", "missing.ckpt", "--prompt", "Hi", "--no_safety", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "CheckpointError" in err
    assert err.strip().splitlines()[-1] == "error: missing.ckpt: checkpoint not found"


def test_dashed_flags_of_earlier_versions_are_rewritten():
    parser = inference_parser("test", None)
    argv = ["--max-new-tokens", "5", "--no-safety", "--greedy", "--prompt-x", "--top-p=0.5", "--seed", "3"]
    assert normalise_flags(parser, argv) == ["--max_new_tokens", "5", "--no_safety", "true", "--greedy", "true",
                                             "--prompt-x", "--top_p=0.5", "--seed", "3"]


def test_a_training_yaml_drives_generate_and_its_typos_are_named(tmp_path, capsys):
    parser = inference_parser("test", None)
    args = parse(parser, ["--config", str(TINY_CONFIG), "--checkpoint", "x.ckpt"])
    assert str(args.checkpoint) == "x.ckpt" and args.max_new_tokens == 200  # trainer:, model:, data: ignored
    typo = tmp_path / "typo.yaml"
    typo.write_text("max_new_tokns: 5\n")
    with pytest.raises(ValueError, match="typo.yaml: unknown key 'max_new_tokns'"):
        parse(inference_parser("test", None), ["--config", str(typo)])
    own = tmp_path / "own.yaml"
    own.write_text("max_new_tokens: 7\ngreedy: true\n")
    args = parse(inference_parser("test", None), ["--config", str(own), "--max_new_tokens", "9"])
    assert (args.max_new_tokens, args.greedy) == (9, True)  # the flag wins over the file


@pytest.mark.parametrize(("text", "message"), [
    ("max_new_tokens: many\n", "max_new_tokens: Expected a int. Got value: many (see test --help)"),
    ("greedy: maybe\n", "greedy: Expected a bool. Got value: maybe (see test --help)"),
])
def test_a_wrong_type_in_a_config_file_is_named_before_anything_runs(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ValueError) as raised:  # before: a TypeError traceback, later, from the str
        parse(inference_parser("test", None), ["--config", str(bad)])
    assert str(raised.value) == f"--config {bad}: {message}"


def test_a_hub_id_without_network_fails_at_once_naming_it():
    from mh_lightning.errors import ModelLoadError
    from mh_lightning.model import load_tokenizer

    expected = "cannot load model 'nobody/no-such-model': it is neither a local folder nor in the local cache"
    with pytest.raises(ModelLoadError, match=expected):
        load_tokenizer("nobody/no-such-model")


def test_a_hub_dataset_without_network_fails_at_once_naming_it():
    from mh_lightning.data import DataError, load_conversations

    expected = "cannot load dataset 'nobody/no-such-data': it is neither a local folder nor in the local cache"
    with pytest.raises(DataError, match=expected):
        load_conversations("nobody/no-such-data")


def test_the_console_script_runs_the_dispatcher():
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"mh-lightning": "mh_lightning.cli:main"}
    assert cli.resolve(scripts["mh-lightning"]) is cli.main
