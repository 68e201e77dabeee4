"""The OpenAI chat-completions wire format: the request schema, its checks, and the reply shapes.

Errors are `RequestError`s carrying the HTTP status and OpenAI's error body
(`{"error": {"message", "type", "param", "code"}}`), so any OpenAI client shows the message.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mh_lightning.inference import GenerationConfig
from mh_lightning.safety import SafetyGuard, crisis_reply, neutralize_markers, resources_footer


class RequestError(Exception):
    """A request the server refuses; `status` is the HTTP status, the message says what to fix."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 and self.status != 429 else "server_error"
        if self.status == 401:
            kind = "authentication_error"
        elif self.status == 429:
            kind = "rate_limit_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


# -- the request ---------------------------------------------------------------------------
class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatRequest(BaseModel):
    """The fields this server reads; other OpenAI fields (user, stream_options, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    messages: list[Message]
    model: str | None = None
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1)
    stream_options: dict[str, Any] | None = None


def parse_request(raw: bytes) -> ChatRequest:
    """The request from its JSON body; 400 with the field at fault otherwise."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(400, f"the body is not JSON ({err}); send Content-Type: application/json with "
                                "{\"messages\": [{\"role\": \"user\", \"content\": \"...\"}]}",
                           code="invalid_json") from None
    if not isinstance(data, dict):
        raise RequestError(400, "the body must be a JSON object with a 'messages' list", code="invalid_schema")
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise RequestError(400, f"{where}: {first['msg']}", param=where, code="invalid_schema") from None


def generation_settings(request: ChatRequest, defaults: GenerationConfig) -> GenerationConfig:
    """The request's sampling settings over the server's; asking for more tokens than the
    server's --max_new_tokens is a 400. Temperature 0 means greedy decoding, as in OpenAI's API."""
    asked = request.max_completion_tokens or request.max_tokens
    if asked is not None and asked > defaults.max_new_tokens:
        field = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
        raise RequestError(400, f"{field}={asked} is more than this server allows ({defaults.max_new_tokens}, "
                                "its --max_new_tokens): ask for fewer", param=field, code="too_many_tokens")
    temperature = defaults.temperature if request.temperature is None else request.temperature
    greedy = defaults.greedy or temperature == 0
    return GenerationConfig(
        max_new_tokens=asked or defaults.max_new_tokens,
        temperature=defaults.temperature if greedy else temperature,
        top_p=defaults.top_p if request.top_p is None else request.top_p,
        greedy=greedy,
        repetition_penalty=defaults.repetition_penalty,
        seed=defaults.seed if request.seed is None else request.seed,
    )


# -- the conversation ----------------------------------------------------------------------
@dataclass(frozen=True)
class Conversation:
    """A request's messages as the chat sees them."""

    question: str  # the last user message, raw (the guard neutralises it)
    history: list[tuple[str, str]]  # earlier (user, assistant) turns: markers neutralised, safety text removed
    context: list[str]  # the earlier user messages, raw, oldest first: the guard's context
    first: bool  # no assistant turn yet: the reply opens with the disclaimer


def safety_texts(guard: SafetyGuard) -> list[str]:
    """What the guard adds to answers; a client sends it back in the history, the model must not see it."""
    return [crisis_reply(guard.resources), guard.disclaimer, resources_footer(guard.resources)]


def conversation(request: ChatRequest, guard: SafetyGuard) -> Conversation:
    """Pair the messages into turns; system messages are dropped (the training format has none),
    consecutive messages of one role are joined, and the last message must be the user's."""
    turns: list[list[str]] = []  # [role, text] with roles merged
    for message in request.messages:
        if message.role in ("system", "developer"):
            continue
        text = message.text()
        if turns and turns[-1][0] == message.role:
            turns[-1][1] += "\n" + text
        else:
            turns.append([message.role, text])
    if not turns:
        raise RequestError(400, "messages holds no user message: add {\"role\": \"user\", \"content\": \"...\"}",
                           param="messages", code="empty_messages")
    if turns[-1][0] != "user":
        raise RequestError(400, f"the last message is from the {turns[-1][0]}; the last message must be the "
                                "user's (the one to answer)", param="messages", code="last_message_not_user")
    question = turns[-1][1]
    if not question.strip():
        raise RequestError(400, "the last user message is empty: write something to answer",
                           param="messages", code="empty_message")
    if turns[0][0] == "assistant":  # a greeting some frontends add: not a turn of the training format
        turns = turns[1:]
    strip = safety_texts(guard)
    history = []
    for (_, user), (_, assistant) in zip(turns[:-1:2], turns[1:-1:2], strict=True):
        for text in strip:
            assistant = assistant.replace(text, "")
        if assistant.strip():
            history.append((neutralize_markers(user, guard.style).strip(),
                            neutralize_markers(assistant, guard.style).strip()))
    context = [text for role, text in turns[:-1] if role == "user"]
    return Conversation(question, history, context, first=len(turns) == 1)


# -- the replies ---------------------------------------------------------------------------
FINISH_REASONS = {"eos": "stop", "stop_string": "stop", "length": "length", "screened": "content_filter",
                  "cancelled": "stop"}


class Completion:
    """The id, time and model name shared by every chunk of one reply."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model

    def chunk(self, delta: dict[str, str], part: str | None = None, finish_reason: str | None = None) -> str:
        """One server-sent event; `mh_lightning_part` names the safety part the text belongs to."""
        body: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                "model": self.model,
                                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
        if part is not None:
            body["mh_lightning_part"] = part
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> str:
        """The last event when the client asked for `stream_options.include_usage`."""
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                         "total_tokens": prompt_tokens + completion_tokens}}
        return f"data: {json.dumps(body)}\n\n"

    def whole(self, parts: list[tuple[str, str]], finish_reason: str, prompt_tokens: int,
              completion_tokens: int) -> dict[str, Any]:
        """A non-streamed reply; `mh_lightning_parts` lists (part, text) in the order shown."""
        return {
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "finish_reason": finish_reason,
                         "message": {"role": "assistant", "content": "".join(t for _, t in parts).strip()}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
            "mh_lightning_parts": [{"part": p, "text": t} for p, t in parts],
        }


DONE = "data: [DONE]\n\n"
