"""`serve` run as a child process (the load test, the tests): a free loopback port, waiting for
/health, and stopping it. Not used by the server itself."""

from __future__ import annotations

import subprocess
import time

import httpx

from mh_lightning.serve.cli import bind


class ServerStartError(RuntimeError):
    """The served process exited, or did not answer /health in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the child binds it a moment later)."""
    sock = bind(host, 0)
    port = sock.getsockname()[1]
    sock.close()
    return port


def wait_healthy(url: str, seconds: float, process: subprocess.Popen | None = None) -> dict:
    """/health's answer once the server at `url` is up; `ServerStartError` if `process` exits first
    or nothing answers within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerStartError(f"the server exited with code {process.returncode}")
        try:
            return httpx.get(f"{url}/health", timeout=2).json()
        except httpx.HTTPError:
            time.sleep(0.2)
    raise ServerStartError(f"{url} did not answer /health within {seconds} s")


def stop(process: subprocess.Popen, seconds: float = 30) -> None:
    """SIGTERM (uvicorn finishes in-flight requests and exits), then SIGKILL after `seconds`."""
    process.terminate()
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
