"""Replies run on worker threads fed by a bounded queue; their text flows back to the event loop.

One worker for a local model (one model, one generation at a time), several in proxy mode
(the backend server batches). A full queue is refused at once (429 with Retry-After) instead
of piling up requests in memory. A job whose client went away is skipped, or its generation
stops at the next token (`Job.cancel`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mh_lightning.inference import GenerationConfig, context_length, prompt_budget
from mh_lightning.inference.chat import ChatSession
from mh_lightning.safety import SafetyGuard, neutralize_markers
from mh_lightning.serve.protocol import Conversation, RequestError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finished:
    stop_reason: str  # as in `Answer.stop_reason`
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Job:
    conversation: Conversation
    config: GenerationConfig
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)  # ("part", name) | ("text", str) | ("end", x)
    cancel: threading.Event = field(default_factory=threading.Event)

    def send(self, kind: str, value: Any) -> None:
        """From a worker thread: hand an event to the request's coroutine."""
        self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))


class Worker(Protocol):
    def check(self, talk: Conversation, config: GenerationConfig) -> None:
        """Refuse a request before it is queued (raise `RequestError`)."""

    def run(self, job: Job, on_part: Callable[[str], None], write: Callable[[str], None]) -> Finished:
        """One reply, written through the safety guard."""


class Engine:
    """A bounded queue in front of `workers` threads that call `worker.run` for each job."""

    def __init__(self, worker: Worker, model_name: str, guard: SafetyGuard, defaults: GenerationConfig,
                 workers: int = 1, max_queue: int = 8) -> None:
        self.worker, self.model_name, self.guard, self.defaults = worker, model_name, guard, defaults
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self.active = 0  # replies being generated now
        self.replies = 0  # replies finished (any stop reason), for /health
        self.generated_tokens = 0  # for /health and the disconnect test
        self.seconds_per_reply = 1.0  # a running mean, for Retry-After
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, name=f"mh-serve-worker-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    # -- the request side (event loop) -------------------------------------------------------
    def submit(self, job: Job) -> None:
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            wait = max(1, math.ceil(self.seconds_per_reply * (self.jobs.qsize() + 1) / len(self._threads)))
            raise RequestError(429, f"the server is busy ({self.jobs.maxsize} requests already waiting); "
                                    f"retry in {wait} s", code="queue_full",
                               headers={"Retry-After": str(wait)}) from None

    def start(self, job: Job) -> None:
        """Check and queue `job`, or raise the `RequestError` to answer with."""
        self.worker.check(job.conversation, job.config)
        self.submit(job)

    @staticmethod
    async def events(job: Job) -> AsyncIterator[tuple[str, Any]]:
        """The events of a started job until its end; leaving early (the client went away, the
        request task was cancelled) cancels the job."""
        try:
            while True:
                kind, value = await job.events.get()
                yield kind, value
                if kind in ("end", "error"):
                    return
        finally:
            job.cancel.set()

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "model": self.model_name, "safety": self.guard.enabled,
                "generating": self.active, "waiting": self.jobs.qsize(), "replies": self.replies,
                "generated_tokens": self.generated_tokens}

    def close(self) -> None:
        for _ in self._threads:
            try:
                self.jobs.put_nowait(None)
            except queue.Full:  # daemon threads: they end with the process
                break

    # -- the worker side -------------------------------------------------------------------
    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            if job.cancel.is_set():  # the client left while the job waited
                continue
            began = time.perf_counter()
            with self._lock:
                self.active += 1
            try:
                done = self.worker.run(job, lambda part: job.send("part", part), lambda text: job.send("text", text))
                with self._lock:
                    self.generated_tokens += done.completion_tokens
                job.send("end", done)
            except RequestError as err:
                job.send("error", err)
            except Exception as err:  # one bad reply must not take the server down
                log.exception("a reply failed")
                job.send("error", RequestError(500, f"generation failed ({type(err).__name__}); the server "
                                                    "keeps serving", code="generation_failed"))
            finally:
                seconds = time.perf_counter() - began
                with self._lock:
                    self.active -= 1
                    self.replies += 1
                    self.seconds_per_reply = 0.8 * self.seconds_per_reply + 0.2 * seconds


class LocalModel:
    """Replies from a loaded model, through `ChatSession` (the chat command's turn logic)."""

    def __init__(self, model: Any, tokenizer: Any, style: Any, guard: SafetyGuard,
                 max_context: int | None = None) -> None:
        self.model, self.tokenizer, self.style, self.guard = model, tokenizer, style, guard
        self.max_context = context_length(model, max_context)

    def check(self, talk: Conversation, config: GenerationConfig) -> None:
        """A last message longer than the context leaves beside the answer is a 400, not a silent cut."""
        budget = prompt_budget(self.max_context, config.max_new_tokens)
        prompt = self.style.prompt(neutralize_markers(talk.question, self.guard.style))
        tokens = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if tokens > budget:
            raise RequestError(400, f"the last message is too long: {tokens} tokens in the prompt format, and "
                                    f"{budget} fit beside max_tokens={config.max_new_tokens} in the model's "
                                    f"{self.max_context}-token context; shorten it", param="messages",
                               code="context_length_exceeded")

    def run(self, job: Job, on_part: Callable[[str], None], write: Callable[[str], None]) -> Finished:
        talk = job.conversation
        session = ChatSession(self.model, self.tokenizer, self.style, job.config, self.max_context, self.guard)
        session.history = list(talk.history)
        # the disclaimer opens a conversation; a --no_safety server (a proxy's backend) adds none
        session.replies = 0 if talk.first and self.guard.enabled else 1
        session.reply(talk.question, write, talk.context, job.cancel.is_set, on_part)
        answer = session.last_answer
        return Finished(answer.stop_reason, answer.prompt_tokens, answer.new_tokens)
