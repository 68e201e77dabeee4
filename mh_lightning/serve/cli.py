"""`mh-lightning serve` / `python -m mh_lightning.serve`: the web chat and the OpenAI-compatible API.

    python -m mh_lightning.serve --checkpoint runs/tiny_cpu/checkpoints/last.ckpt
    python -m mh_lightning.serve --checkpoint EXPORTED_DIR --region uk --port 8000
    python -m mh_lightning.serve --backend_url http://127.0.0.1:8001/v1   # safety proxy in front of vLLM
    mh-lightning serve --config serve.yaml --port 8001                   # the flags in a yaml file

Flags are spelled with underscores; dashed spellings (`--backend-url`) are accepted too. A
`--config` file holds the same keys (`checkpoint: ...`, `port: 8000`, `region: uk`); the yaml
that trained a run is accepted too, and its training sections (`trainer:`, `model:`, `data:` ...)
are ignored, as in generate and chat. Files are read in order, and flags win over them.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentParser

from mh_lightning.cli.common import FIT_KEYS, config_paths, read_config
from mh_lightning.errors import UsageError, run_command
from mh_lightning.inference import GenerationConfig, context_length, prompt_budget
from mh_lightning.safety import DEFAULT_REGION, NO_SAFETY_WARNING, SafetyGuard, enforce_offline

API_KEY_ENV = "MH_LIGHTNING_API_KEY"
BOOLEAN_FLAGS = ("--no_safety", "--greedy")  # given alone, they mean true
DESCRIPTION = ("Serve a trained model (--checkpoint) or another server (--backend_url) behind the safety layer: "
               "a web chat at / and an OpenAI-compatible API at /v1. Dashed spellings of the flags work too; "
               "--config FILE reads them from a yaml file.")


@dataclass
class ServeOptions:
    """Serve a trained model (or a backend server) behind the safety layer: a web chat at / and an
    OpenAI-compatible API at /v1.

    Args:
        checkpoint: a Lightning checkpoint (.ckpt) of this project or a folder from mh_lightning.export
        backend_url: instead of --checkpoint: the base URL (ending in /v1) of an OpenAI-compatible server
            (vLLM, TGI, Ollama, llama.cpp, another serve) to put the safety layer in front of
        backend_model: the model id to ask the backend for (default: the first one it lists)
        backend_api_key: the key the backend wants, if any
        host: the address to listen on; anything but loopback exposes the chat to the network
        port: the port to listen on
        region: whose crisis resources to show (the regions of resources/crisis_resources.yaml)
        api_key: require 'Authorization: Bearer KEY' on /v1 (default: the MH_LIGHTNING_API_KEY variable)
        no_safety: research only: no crisis screening, answer filtering or resources (e.g. a proxy's backend)
        max_body_bytes: largest request body accepted; larger ones get 413
        max_queue: requests that may wait for the model; past it, 429 with Retry-After
        concurrency: with --backend_url: replies in flight to the backend at once
        cors_origins: comma-separated origins allowed to call the API from a browser (default: none)
        max_new_tokens: the default and the largest answer length in tokens a request may ask for
        temperature: default sampling temperature (a request's temperature 0 means greedy)
        top_p: default nucleus sampling threshold
        greedy: always take the most likely token
        repetition_penalty: 1.0 is off
        seed: default sampling seed (a request's seed overrides it)
        max_context: tokens of prompt + answer (default: the model's limit, 2048 for Falcon-7B)
        device: where to run the model (default: cuda when available, else cpu)
        model: a local copy of the base model the checkpoint was trained on
    """

    checkpoint: Path | None = None
    backend_url: str | None = None
    backend_model: str | None = None
    backend_api_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    region: str = DEFAULT_REGION
    api_key: str | None = None
    no_safety: bool = False
    max_body_bytes: int = 1_000_000
    max_queue: int = 16
    concurrency: int = 8
    cors_origins: str | None = None
    max_new_tokens: int = 200
    temperature: float = 0.7
    top_p: float = 0.7
    greedy: bool = False
    repetition_penalty: float = 1.0
    seed: int | None = None
    max_context: int | None = None
    device: str | None = None
    model: str | None = None


def normalise(argv: list[str]) -> list[str]:
    """`--backend-url X` -> `--backend_url X`, and a boolean flag given alone -> `--no_safety true`."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg.partition("=")
            arg = "--" + name[2:].replace("-", "_") + eq + value
            if arg in BOOLEAN_FLAGS and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
                out += [arg, "true"]
                continue
        out.append(arg)
    return out


def build_parser(exit_on_error: bool = False) -> ArgumentParser:
    parser = ArgumentParser(prog="mh-lightning serve", description=DESCRIPTION, exit_on_error=exit_on_error,
                            default_env=False)
    parser.add_argument("--config", action="append", default=[],
                        help="a yaml file of these flags (checkpoint: ..., port: 8000), or the yaml that trained "
                             "the run (its training sections are ignored); repeat to stack files, flags win")
    parser.add_class_arguments(ServeOptions, nested_key=None, as_group=False)
    return parser


def readable(err: Exception, key_prefix: str) -> str:
    """jsonargparse's 'Parser key "port":\n  Expected a <class 'int'>. Got value: x' on one line,
    the key written as `key_prefix` + name (`--port` for a flag, `port` in a file)."""
    message = " ".join(str(err).split())
    message = re.sub(r'^Parser key "(\w+)": ', key_prefix + r"\1: ", message)
    return message.replace("<class '", "").replace("'>", "")


def config_values(parser: ArgumentParser, path: str) -> dict[str, Any]:
    """serve's settings in the yaml file `path`, typed and checked; a training yaml's sections are skipped."""
    values = {}
    for key, value in read_config(path).items():
        name = str(key).replace("-", "_")
        if name in ServeOptions.__dataclass_fields__ and not (name in FIT_KEYS and isinstance(value, dict)):
            values[name] = value
        elif name not in FIT_KEYS:
            raise UsageError(f"--config {path}: unknown key {key!r}; the keys are serve's flags without the "
                             "dashes (see mh-lightning serve --help)")
    try:
        typed = parser.parse_object(values)
    except Exception as err:  # jsonargparse's ArgumentError, naming the key
        raise UsageError(f"--config {path}: {readable(err, '')} (see mh-lightning serve --help)") from None
    return {name: typed[name] for name in values}


def parse(argv: list[str]) -> ServeOptions:
    parser = build_parser()
    configs, flags = config_paths(normalise(argv))
    set_by: dict[str, str] = {}  # setting -> the file that gave its value
    for path in configs:
        values = config_values(parser, path)
        parser.set_defaults(values)
        set_by.update(dict.fromkeys(values, path))
    try:
        namespace = parser.parse_args(flags)
    except Exception as err:  # jsonargparse's ArgumentError
        raise UsageError(f"{readable(err, '--')} (see --help)") from None
    values = {k: v for k, v in vars(namespace).items() if k in ServeOptions.__dataclass_fields__}
    try:
        return check(ServeOptions(**values))
    except UsageError as err:  # a value from a file: name the file too
        flag = re.match(r"--(\w+)", str(err))
        given = {arg[2:].partition("=")[0] for arg in flags if arg.startswith("--")}
        if flag and flag[1] in set_by and flag[1] not in given:
            raise UsageError(f"--config {set_by[flag[1]]}: {err}") from None
        raise


def check(options: ServeOptions) -> ServeOptions:
    """Everything about the flags that can be checked before loading a model."""
    if (options.checkpoint is None) == (options.backend_url is None):
        raise UsageError("give --checkpoint CKPT_OR_EXPORT (serve a model here) or --backend_url URL (a safety "
                         "proxy in front of another server), exactly one of them")
    if options.checkpoint is not None and not options.checkpoint.exists():
        raise UsageError(f"--checkpoint {options.checkpoint}: not found")
    if options.backend_url is not None and not options.backend_url.startswith(("http://", "https://")):
        raise UsageError(f"--backend_url {options.backend_url}: give an http:// or https:// URL ending in /v1")
    if not 0 <= options.port <= 65535:
        raise UsageError(f"--port {options.port}: give a port between 1 and 65535 (0 picks a free one)")
    for flag in ("max_body_bytes", "max_queue", "concurrency"):
        if getattr(options, flag) < 1:
            raise UsageError(f"--{flag} {getattr(options, flag)}: must be at least 1")
    if options.api_key is None:
        options.api_key = os.environ.get(API_KEY_ENV) or None
    try:
        config = generation_config(options)
        if options.max_context is not None:
            prompt_budget(options.max_context, config.max_new_tokens)
    except ValueError as err:
        raise UsageError(f"{err} (see --help)") from None
    return options


def generation_config(options: ServeOptions) -> GenerationConfig:
    return GenerationConfig(options.max_new_tokens, options.temperature, options.top_p, options.greedy,
                            options.repetition_penalty, 1, options.seed)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """Take the port before the model loads, so a busy port fails at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({err.strerror}); choose another "
                         "--port, or stop the program using it") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def build_engine(options: ServeOptions, guard: SafetyGuard) -> Any:
    """The engine behind the app: a model loaded here, or the backend server."""
    from mh_lightning.serve.engine import Engine, LocalModel

    config = generation_config(options)
    if options.backend_url is not None:
        from mh_lightning.serve.proxy import BackendProxy, backend_models

        url = options.backend_url.rstrip("/")
        served = backend_models(url, options.backend_api_key)
        model = options.backend_model or (served[0] if served else None)
        if model is None:
            raise UsageError(f"--backend_url {url}: the backend lists no model; give --backend_model")
        worker = BackendProxy(url, model, guard, guard.style, options.backend_api_key)
        return Engine(worker, model, guard, config, options.concurrency, options.max_queue)

    import torch

    from mh_lightning.checkpoint import load_for_inference

    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    overrides = {"model_name": options.model} if options.model else {}
    model, tokenizer, style, _ = load_for_inference(options.checkpoint, device, **overrides)
    guard.style = style  # neutralise the markers of the format this checkpoint was trained with
    limit = context_length(model, options.max_context)
    try:
        prompt_budget(limit, config.max_new_tokens)
    except ValueError as err:
        raise UsageError(f"--max_new_tokens: {err}") from None
    name = options.checkpoint.resolve().name if options.checkpoint.is_dir() else options.checkpoint.stem
    worker = LocalModel(model, tokenizer, style, guard, options.max_context)
    return Engine(worker, f"mh-lightning-{name}", guard, config, 1, options.max_queue)


def serve(options: ServeOptions) -> int:
    import uvicorn

    from mh_lightning.cli.common import setup_cli
    from mh_lightning.serve.app import create_app

    enforce_offline()
    guard = SafetyGuard(options.region, enabled=not options.no_safety)  # a bad --region fails before loading
    if options.no_safety:
        print(NO_SAFETY_WARNING, file=sys.stderr)
    if not is_loopback(options.host):
        print(f"WARNING: listening on {options.host}: anyone who can reach this machine can use the chat"
              + ("" if options.api_key else " and the API (set --api_key or MH_LIGHTNING_API_KEY)")
              + ". Put it behind HTTPS before it leaves a trusted network.", file=sys.stderr)
    sock = bind(options.host, options.port)
    setup_cli()
    logging.getLogger("mh_lightning.serve.access").setLevel(logging.INFO)
    try:
        engine = build_engine(options, guard)
    except BaseException:
        sock.close()
        raise
    origins = [o.strip() for o in options.cors_origins.split(",") if o.strip()] if options.cors_origins else None
    app = create_app(engine, options.api_key, options.max_body_bytes, origins)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"Serving {engine.model_name} on http://{shown}:{port}/ (open it in a browser; API at "
          f"http://{shown}:{port}/v1). Ctrl-C stops it.", file=sys.stderr, flush=True)
    # access_log=False: uvicorn's own access log prints query strings; ours (app.py) does not
    config = uvicorn.Config(app, log_config=None, access_log=False, server_header=False, date_header=False,
                            timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        engine.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """The project's error policy: a mistake a user can fix is one `error: ...` line on stderr and exit
    code 2 (`--debug` adds the traceback); anything else is a bug and shows its traceback."""
    return run_command(_main, argv)


def _main(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        build_parser(exit_on_error=True).print_help()
        return 0
    try:
        return serve(parse(argv))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
