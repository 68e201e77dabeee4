"""`python -m mh_lightning.serve` as a real process: flags, `--config` files and their errors, nothing
written to the working directory or HOME during a conversation, and the proxy mode in front of a
second serve."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest
from conftest import TINY_CONFIG
from serve_support import process_server, serve_env

from mh_lightning.safety import DISCLAIMER, NO_SAFETY_WARNING, crisis_reply, load_resources
from mh_lightning.serve.cli import ServeOptions, main, parse

CRISIS = crisis_reply(load_resources())


def run_serve(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mh_lightning.serve", *args], cwd=home, env=serve_env(home),
                          capture_output=True, text=True, timeout=120)


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize(("args", "message"), [
    ((), "give --checkpoint CKPT_OR_EXPORT (serve a model here) or --backend_url URL"),
    (("--checkpoint", "missing.ckpt"), "--checkpoint missing.ckpt: not found"),
    (("--backend-url", "ftp://x"), "--backend_url ftp://x: give an http:// or https:// URL ending in /v1"),
    (("--backend_url", "http://127.0.0.1:1/v1", "--max-queue", "0"), "--max_queue 0: must be at least 1"),
    (("--backend_url", "http://127.0.0.1:1/v1", "--port", "eighty"), "--port: Expected a int. Got value: eighty"),
    (("--backend_url", "http://127.0.0.1:1/v1", "--top-p", "2"), "top_p must be in (0, 1], got 2.0"),
    (("--backend_url", "http://127.0.0.1:1/v1", "--bogus", "1"), "unrecognized arguments: --bogus 1"),
    (("--backend_url", "http://127.0.0.1:1/v1", "--region", "atlantis"), "unknown region 'atlantis'"),
])
def test_a_flag_a_user_can_fix_is_one_error_line_and_exit_2(capsys, args, message):
    assert main(list(args)) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0], errors


BACKEND = "http://127.0.0.1:1/v1"


def test_a_config_file_sets_the_flags_and_flags_win(tmp_path):
    first, second = tmp_path / "serve.yaml", tmp_path / "local.yaml"
    first.write_text(f"backend-url: {BACKEND}\nport: 8100\nregion: uk\nmax_queue: 3\nno_safety: false\n")
    second.write_text("port: 8200\ntemperature: 0.5\n")
    options = parse(["--config", str(first), f"--config={second}", "--max_queue", "5"])
    assert options == ServeOptions(backend_url=BACKEND, port=8200, region="uk", max_queue=5, temperature=0.5)


def test_the_yaml_that_trained_a_run_is_accepted_and_its_sections_ignored(tmp_path):
    # tiny_cpu.yaml has trainer:, model:, data: ... sections (model: is a mapping, not serve's --model)
    assert parse(["--config", str(TINY_CONFIG), "--backend_url", BACKEND]) == parse(["--backend_url", BACKEND])
    stacked = tmp_path / "serve.yaml"
    stacked.write_text("checkpoint: runs/x.ckpt\n")  # a path in the file: relative to the working directory
    options = parse(["--config", str(TINY_CONFIG), "--config", str(stacked), "--checkpoint", str(TINY_CONFIG)])
    assert options.checkpoint == TINY_CONFIG and options.model is None


@pytest.mark.parametrize(("text", "message"), [
    ("port: eighty\n", "{file}: port: Expected a int. Got value: eighty (see mh-lightning serve --help)"),
    ("prot: 80\n", "{file}: unknown key 'prot'; the keys are serve's flags without the dashes "
                   "(see mh-lightning serve --help)"),
    (f"backend_url: {BACKEND}\nmax_queue: 0\n", "{file}: --max_queue 0: must be at least 1"),
    ("checkpoint: missing.ckpt\n", "{file}: --checkpoint missing.ckpt: not found"),
    ("- port\n", "{file}: expected a mapping of keys"),
])
def test_a_mistake_in_a_config_file_names_the_file_and_the_key(tmp_path, capsys, text, message):
    file = tmp_path / "serve.yaml"
    file.write_text(text)
    assert main(["--config", str(file)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: --config " + message.format(file=file)), errors


def test_a_flag_overriding_a_bad_file_value_is_what_counts(tmp_path, capsys):
    file = tmp_path / "serve.yaml"
    file.write_text("checkpoint: missing.ckpt\n")
    assert main(["--config", str(file), "--checkpoint", "other.ckpt"]) == 2
    assert capsys.readouterr().err == "error: --checkpoint other.ckpt: not found\n"  # the flag's value, no file
    assert main(["--config", str(tmp_path / "none.yaml")]) == 2
    assert capsys.readouterr().err == f"error: --config {tmp_path / 'none.yaml'}: file not found\n"


@pytest.mark.slow
def test_another_host_warns_and_an_unreachable_backend_is_one_error_line(tmp_path):
    result = run_serve("--host", "0.0.0.0", "--port", "0", "--backend_url", "http://127.0.0.1:1/v1", home=tmp_path)
    assert "WARNING: listening on 0.0.0.0: anyone who can reach this machine can use the chat and the API " \
           "(set --api_key or MH_LIGHTNING_API_KEY)" in result.stderr
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(
        "error: --backend_url http://127.0.0.1:1/v1: GET http://127.0.0.1:1/v1/models failed (ConnectError")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_help_lists_the_flags(tmp_path):
    result = run_serve("--help", home=tmp_path)
    assert result.returncode == 0
    for flag in ("--config", "--checkpoint", "--backend_url", "--api_key", "--no_safety", "--max_body_bytes",
                 "--max_queue", "--cors_origins", "--max_new_tokens", "--region"):
        assert flag in result.stdout


@pytest.mark.slow
def test_a_served_conversation_writes_nothing_to_the_working_directory_or_home(tiny_checkpoint, tmp_path):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    with process_server("--checkpoint", str(tiny_checkpoint), cwd=cwd, home=home) as url:
        before = files_under(home) | files_under(cwd)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        first = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "I feel alone."}],
                                               max_tokens=20, seed=1)
        history = [{"role": "user", "content": "I feel alone."},
                   {"role": "assistant", "content": first.choices[0].message.content},
                   {"role": "user", "content": "I want to end my life"}]
        chunks = list(client.chat.completions.create(model="m", messages=history, stream=True, max_tokens=20))
        assert chunks[0].choices[0].delta.content == CRISIS + "\n\n"
        assert httpx.get(f"{url}/").status_code == 200
        assert files_under(home) | files_under(cwd) == before == set()
    assert files_under(home) | files_under(cwd) == set()


@pytest.mark.slow
def test_the_proxy_keeps_the_safety_layer_in_front_of_a_no_safety_backend(tiny_checkpoint, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with process_server("--checkpoint", str(tiny_checkpoint), "--no-safety", "--max_new_tokens", "30",
                        cwd=tmp_path, home=home) as backend:
        direct = openai.OpenAI(base_url=f"{backend}/v1", api_key="unused", max_retries=0)
        crisis = [{"role": "user", "content": "I want to kill myself"}]
        raw = direct.chat.completions.create(model="m", messages=crisis, max_tokens=10, seed=1)
        assert CRISIS not in raw.choices[0].message.content  # the backend alone has no safety layer
        with process_server("--backend-url", f"{backend}/v1", "--max_new_tokens", "30", "--api_key", "k",
                            cwd=tmp_path, home=home) as proxy:
            client = openai.OpenAI(base_url=f"{proxy}/v1", api_key="k", max_retries=0)
            assert [m.id for m in client.models.list()] == [m.id for m in direct.models.list()]
            chunks = list(client.chat.completions.create(model="m", messages=crisis, stream=True, max_tokens=10,
                                                         seed=1))
            assert chunks[0].choices[0].delta.content == CRISIS + "\n\n"
            assert chunks[0].model_extra["mh_lightning_part"] == "crisis"
            text = "".join(c.choices[0].delta.content or "" for c in chunks)
            assert text.startswith(f"{CRISIS}\n\n{DISCLAIMER}\n\n")
            assert NO_SAFETY_WARNING not in text  # the backend's own warning never reaches the user
            calm = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hello"}],
                                                  max_tokens=10, seed=1)
            assert calm.choices[0].message.content.startswith(DISCLAIMER)
            assert calm.usage.completion_tokens > 0
            bad = httpx.post(f"{proxy}/v1/chat/completions", headers={"Authorization": "Bearer k"},
                             json={"messages": [{"role": "assistant", "content": "hi"}]})
            assert bad.status_code == 400 and httpx.get(f"{proxy}/health").json()["status"] == "ok"
            assert httpx.post(f"{proxy}/v1/chat/completions", json={"messages": crisis}).status_code == 401

