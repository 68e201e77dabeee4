"""Hub ids without a network: fail in seconds, naming the id, instead of retrying for a minute."""

from __future__ import annotations

import socket
import urllib.parse
import urllib.request
from pathlib import Path

CONNECT_TIMEOUT_S = 3.0


def hub_reachable() -> bool:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    if urllib.request.getproxies():
        return True  # through a proxy only a real request can tell; let the library try
    host = urllib.parse.urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=CONNECT_TIMEOUT_S).close()
    except OSError:
        return False
    return True


def unavailable(repo_id: str, repo_type: str = "model") -> str | None:
    """Why `repo_id` cannot be loaded now (no network and not in the local cache), or None if it can."""
    if Path(repo_id).exists():
        return None
    from huggingface_hub import try_to_load_from_cache

    probe = "config.json" if repo_type == "model" else "README.md"
    try:
        cached = isinstance(try_to_load_from_cache(repo_id, probe, repo_type=repo_type), str)
    except ValueError:  # not a valid hub id (a path that does not exist): the loader names the problem
        return None
    if cached or hub_reachable():
        return None
    return ("it is neither a local folder nor in the local cache, and the Hugging Face hub cannot be reached "
            "(offline, or HF_HUB_OFFLINE is set)")
