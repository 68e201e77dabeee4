"""Starting `serve` for tests: in a thread of the test process (the model can be scripted) or
as a real subprocess (`python -m mh_lightning.serve`, for privacy and proxy tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from mh_lightning.inference import GenerationConfig
from mh_lightning.safety import SafetyGuard
from mh_lightning.serve.app import create_app
from mh_lightning.serve.cli import bind
from mh_lightning.serve.engine import Engine, LocalModel
from mh_lightning.serve.process import ServerStartError, free_port, stop, wait_healthy

REPO = Path(__file__).resolve().parents[1]
SHORT = GenerationConfig(max_new_tokens=40, seed=0)


@contextmanager
def thread_server(loaded: tuple, guard: SafetyGuard | None = None, max_queue: int = 8,
                  defaults: GenerationConfig = SHORT,
                  **app_options: object) -> Iterator[tuple[str, Engine]]:
    """(base URL, engine) of a server on a free loopback port, run by uvicorn in a thread."""
    model, tokenizer, style, _ = loaded
    guard = guard or SafetyGuard(style=style)
    engine = Engine(LocalModel(model, tokenizer, style, guard), "tiny", guard, defaults, 1, max_queue)
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(create_app(engine, **app_options), log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    wait_healthy(url, 30)
    try:
        yield url, engine
    finally:
        server.should_exit = True
        thread.join(10)
        engine.close()
        sock.close()


def serve_env(home: Path) -> dict[str, str]:
    """The environment of a served subprocess: this checkout's code, HOME in a folder we can inspect."""
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "MH_LIGHTNING_API_KEY")}
    env.update(HOME=str(home), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", XDG_CACHE_HOME=str(home / ".cache"))
    return env


@contextmanager
def process_server(*args: str, cwd: Path, home: Path, timeout: float = 180) -> Iterator[str]:
    """The base URL of `python -m mh_lightning.serve ARGS` on a free port; stopped with SIGTERM
    (`mh_lightning.serve.process.stop`)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mh_lightning.serve", "--port", str(port), *args],
                              cwd=cwd, env=serve_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_healthy(url, timeout, server)
        except ServerStartError as err:
            raise AssertionError(f"{err}: {server.stderr.read() if server.poll() is not None else ''}") from None
        yield url
    finally:
        stop(server, 20)


class Gate:
    """Holds the model's first forward until released: a reply that takes as long as a test needs."""

    def __init__(self, model) -> None:
        self.open = threading.Event()
        self.hook = model.get_base_model().transformer.register_forward_pre_hook(self.hold)

    def hold(self, *args: object) -> None:  # a pre-hook's return value would replace the inputs
        self.open.wait(30)

    def release(self) -> None:
        self.open.set()
        self.hook.remove()


def wait_until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
