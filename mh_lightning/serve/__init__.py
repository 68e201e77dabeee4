"""A web chat and an OpenAI-compatible API with the safety layer in front (`mh-lightning serve`).

`cli` parses the flags and starts uvicorn; `app` is the ASGI app; `engine` queues replies for the
one model (or the backend); `proxy` is the `--backend_url` mode; `protocol` the OpenAI wire format.
"""

from mh_lightning.serve.cli import main

__all__ = ["main"]
