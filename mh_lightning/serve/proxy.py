"""`--backend_url`: the safety layer in front of any OpenAI-compatible server (vLLM, TGI, Ollama,
llama.cpp, or another `serve --no_safety`).

The backend gets the conversation with turn markers neutralised and the guard's own texts
removed, and always streams: its text is released here a sentence at a time, only once the
guard has screened everything up to it, exactly as for a local model (`safe_turn`). The
backend applies the prompt format (for vLLM, `--chat-template` with the template shipped
here, `human_assistant.jinja`) and is asked to stop where a new turn would begin.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from mh_lightning.errors import MHLightningError
from mh_lightning.inference import Answer, AnswerStreamer, GenerationConfig, first_stop, visible_text
from mh_lightning.inference.chat import safe_turn
from mh_lightning.prompts import PromptStyle
from mh_lightning.safety import SafetyGuard
from mh_lightning.serve.engine import Finished, Job
from mh_lightning.serve.protocol import Conversation, RequestError

CHAT_TEMPLATE = Path(__file__).resolve().parent / "human_assistant.jinja"
BACKEND_TIMEOUT = httpx.Timeout(10.0, read=120.0)  # connect fast; a token may take a while on a busy backend


class BackendError(MHLightningError, ValueError):
    """The backend cannot be used; the message names its URL."""


def backend_models(url: str, api_key: str | None = None) -> list[str]:
    """The model ids the backend serves (`GET /v1/models`); checks that it answers at all."""
    try:
        response = httpx.get(f"{url}/models", headers=auth(api_key), timeout=BACKEND_TIMEOUT)
        response.raise_for_status()
        return [entry["id"] for entry in response.json()["data"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
        raise BackendError(f"--backend_url {url}: GET {url}/models failed ({type(err).__name__}: {err}); "
                           "give the base URL of an OpenAI-compatible server, ending in /v1") from None


def auth(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def messages_for(talk: Conversation, prompt_text: str) -> list[dict[str, str]]:
    messages = []
    for user, assistant in talk.history:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return [*messages, {"role": "user", "content": prompt_text}]


class BackendProxy:
    """Replies from a backend server through `safe_turn`: the guard stays here, in front of it."""

    def __init__(self, url: str, model: str, guard: SafetyGuard, style: PromptStyle,
                 api_key: str | None = None) -> None:
        self.url, self.model, self.guard, self.style, self.api_key = url.rstrip("/"), model, guard, style, api_key
        self.client = httpx.Client(timeout=BACKEND_TIMEOUT)

    def check(self, talk: Conversation, config: GenerationConfig) -> None:
        """The backend checks lengths against its own context."""

    def run(self, job: Job, on_part: Callable[[str], None], write: Callable[[str], None]) -> Finished:
        talk, usage = job.conversation, {"prompt_tokens": 0, "completion_tokens": 0}

        def generate(prompt_text: str, on_text: Callable[[str], None],
                     screen: Callable[[str], bool] | None) -> Answer:
            return self.stream(messages_for(talk, prompt_text), job, on_text, screen, usage)

        turn = safe_turn(self.guard, talk.question, generate, write, talk.first and self.guard.enabled,
                         talk.context, on_part)
        return Finished(turn.answer.stop_reason, usage["prompt_tokens"], usage["completion_tokens"])

    def request_body(self, messages: list[dict[str, str]], config: GenerationConfig) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True,
                                "stream_options": {"include_usage": True},
                                "max_tokens": config.max_new_tokens, "stop": list(self.style.stop_strings),
                                "temperature": 0.0 if config.greedy else config.temperature}
        if not config.greedy:
            body["top_p"] = config.top_p
        if config.seed is not None:
            body["seed"] = config.seed
        return body

    def stream(self, messages: list[dict[str, str]], job: Job, on_text: Callable[[str], None],
               screen: Callable[[str], bool] | None, usage: dict[str, int]) -> Answer:
        """Stream the backend's answer through the same release rule as a local model's."""
        streamer = AnswerStreamer(None, self.style, on_text, screen)
        text, reason, began = "", "length", time.perf_counter()
        body = self.request_body(messages, job.config)
        try:
            with self.client.stream("POST", f"{self.url}/chat/completions", json=body,
                                    headers=auth(self.api_key)) as response:
                if response.status_code != 200:
                    detail = " ".join(response.read().decode("utf-8", "replace").split())[:300]
                    raise RequestError(502, f"the backend answered {response.status_code}: {detail}",
                                       code="backend_error")
                for line in response.iter_lines():
                    if job.cancel.is_set():
                        reason = "cancelled"
                        break
                    if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                        continue
                    chunk = json.loads(line[5:])
                    usage.update({k: chunk["usage"][k] for k in usage if (chunk.get("usage") or {}).get(k)})
                    for choice in chunk.get("choices") or []:
                        text += (choice.get("delta") or {}).get("content") or ""
                        if choice.get("finish_reason"):
                            reason = "length" if choice["finish_reason"] == "length" else "eos"
                    streamer.release(visible_text(text, self.style.stop_strings, screen is not None))
                    if streamer.screened or first_stop(text, self.style.stop_strings) is not None:
                        break  # closing the response tells the backend to stop generating
        except httpx.HTTPError as err:
            raise RequestError(502, f"the backend {self.url} failed ({type(err).__name__}: {err})",
                               code="backend_error") from None
        cut = first_stop(text, self.style.stop_strings)
        if cut is not None:
            text, reason = text[:cut], "stop_string"
        text = text.strip()
        if reason != "cancelled" and not streamer.screened:
            streamer.release(text)  # the tail held back while it could have been a stop string
        if streamer.screened:
            reason = "screened"
        return Answer("", text, reason, usage["prompt_tokens"], usage["completion_tokens"],
                      time.perf_counter() - began)
