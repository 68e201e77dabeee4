"""The generation core shared by generate, chat, evaluation and the in-training sample callback.

Prompts come already rendered by a `PromptStyle` (`style.prompt(question, history)`), so
inference sees exactly the training format. Generation stops at EOS or where the model
starts a new turn (`style.stop_strings`); the answer never shows the stop text.

    answers = generate_answers(model, tokenizer, [style.prompt("How do I sleep better?")],
                               GenerationConfig(seed=1), style)
    print(answers[0].text, answers[0].stop_reason)
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import transformers
from transformers.generation.streamers import BaseStreamer

from mh_lightning.prompts import DEFAULT_STYLE, PromptStyle

log = logging.getLogger(__name__)

# Text that ends a sentence: streaming with a safety screen shows whole sentences only.
SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling settings; the defaults are the recipe's (200 tokens, temperature 0.7, top_p 0.7)."""

    max_new_tokens: int = 200
    temperature: float = 0.7
    top_p: float = 0.7
    greedy: bool = False
    repetition_penalty: float = 1.0
    num_return_sequences: int = 1
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if not self.greedy and self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {self.temperature} (use greedy instead)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.num_return_sequences < 1:
            raise ValueError(f"num_return_sequences must be at least 1, got {self.num_return_sequences}")
        if self.greedy and self.num_return_sequences > 1:
            raise ValueError("greedy decoding gives one sequence per prompt: drop greedy or num_return_sequences")

    def to_hf(self, tokenizer: Any) -> transformers.GenerationConfig:
        """The transformers config; top_k is off so that only temperature and top_p shape sampling."""
        sampling = {} if self.greedy else {"temperature": self.temperature, "top_p": self.top_p, "top_k": 0}
        return transformers.GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=not self.greedy,
            repetition_penalty=self.repetition_penalty,
            num_return_sequences=self.num_return_sequences,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            use_cache=True,
            **sampling,
        )


@dataclass(frozen=True)
class Answer:
    prompt: str
    text: str  # the answer only: no prompt, no special tokens, no stop text, stripped
    stop_reason: str  # "eos" | "stop_string" | "length" (streams: "screened" by a safety screen, "cancelled")
    prompt_tokens: int
    new_tokens: int
    seconds: float  # its share of the generation time of its batch: they add up to the wall time


# -- model state ---------------------------------------------------------------------------
@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) and no grad; every module's own train/eval flag is restored
    afterwards (callbacks call this mid-training)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


@contextmanager
def generation_mode(model: torch.nn.Module) -> Iterator[None]:
    """`eval_mode` with the KV cache on for generation; `config.use_cache` is restored afterwards."""
    config = getattr(model, "config", None)
    use_cache = getattr(config, "use_cache", None)
    if config is not None:
        config.use_cache = True
    try:
        with eval_mode(model):
            yield
    finally:
        if config is not None:
            config.use_cache = use_cache


@contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Sample from `seed` (fresh entropy when None) without touching the caller's RNG state."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if seed is None:
            torch.seed()
        else:
            torch.manual_seed(seed)
        yield


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def context_length(model: torch.nn.Module, max_context: int | None = None) -> int:
    """`max_context`, or the model's position limit (2048 for Falcon-7B)."""
    if max_context is not None:
        return max_context
    return int(getattr(model.config, "max_position_embeddings", 2048))


# -- prompts in, answers out ---------------------------------------------------------------
def prompt_budget(max_context: int, max_new_tokens: int) -> int:
    budget = max_context - max_new_tokens
    if budget < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for the prompt in a context of "
                         f"{max_context} tokens: lower max_new_tokens or raise the context")
    return budget


def encode_prompts(tokenizer: Any, prompts: Sequence[str], budget: int) -> list[list[int]]:
    """Token ids of each prompt (no special tokens, as in training); over-long prompts keep
    their last `budget` tokens, with a warning."""
    encoded = []
    for index, prompt in enumerate(prompts):
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if len(ids) > budget:
            log.warning("prompt %d has %d tokens, more than the %d the context leaves beside the answer: "
                        "cut from the left to its last %d tokens", index, len(ids), budget, budget)
            ids = ids[-budget:]
        encoded.append(ids)
    return encoded


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Left padding keeps every prompt's last token next to the first generated one."""
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            input_ids[i, width - len(row):] = torch.tensor(row)
            attention_mask[i, width - len(row):] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}


def decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)


def first_stop(text: str, stop_strings: Sequence[str]) -> int | None:
    """Where the earliest stop string starts in `text`, or None."""
    found = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
    return min(found) if found else None


def finish(tokenizer: Any, new_ids: Sequence[int], style: PromptStyle) -> tuple[str, str, int]:
    """(answer text, stop reason, tokens generated) from one sequence's new token ids.

    Finished sequences of a batch are padded with the pad id (= EOS for Falcon), so the
    first EOS or pad ends the sequence; a stop string before it ends the answer earlier.
    """
    ids = list(new_ids)
    ends = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    end = next((i for i, t in enumerate(ids) if t in ends), None)
    text = decode(tokenizer, ids[:end])
    cut = first_stop(text, style.stop_strings)
    if cut is not None:
        return text[:cut].strip(), "stop_string", len(ids) if end is None else end
    if end is not None and ids[end] == tokenizer.eos_token_id:
        return text.strip(), "eos", end + 1
    return text.strip(), "length", len(ids) if end is None else end


def _generate(model: Any, tokenizer: Any, batch: dict[str, torch.Tensor], config: GenerationConfig,
              style: PromptStyle, **kwargs: Any) -> torch.Tensor:
    return model.generate(
        **batch,
        generation_config=config.to_hf(tokenizer),
        stop_strings=list(style.stop_strings),
        tokenizer=tokenizer,
        use_model_defaults=False,  # the config above is the whole truth, not the model's defaults
        **kwargs,
    )


def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    config: GenerationConfig,
    style: PromptStyle = DEFAULT_STYLE,
    batch_size: int = 8,
    max_context: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Answer]:
    """Answer rendered prompts in left-padded batches.

    Returns `num_return_sequences` answers per prompt, in prompt order. `max_context`
    (default: the model's position limit) bounds prompt + answer; longer prompts are cut
    from the left with a warning. `progress(n)` is called after each batch with its number of
    prompts. The model's train/eval modes and cache setting are restored.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    budget = prompt_budget(context_length(model, max_context), config.max_new_tokens)
    encoded = encode_prompts(tokenizer, prompts, budget)
    device = model_device(model)
    answers: list[Answer] = []
    with generation_mode(model), seeded(config.seed, device):
        for start in range(0, len(prompts), batch_size):
            rows = encoded[start:start + batch_size]
            batch = left_pad(rows, tokenizer.pad_token_id, device)
            began = time.perf_counter()
            output = _generate(model, tokenizer, batch, config, style)
            new = output[:, batch["input_ids"].shape[1]:].tolist()
            share = (time.perf_counter() - began) / len(new)
            for j, ids in enumerate(new):
                index = start + j // config.num_return_sequences
                text, reason, n_new = finish(tokenizer, ids, style)
                answers.append(Answer(prompts[index], text, reason, len(encoded[index]), n_new, share))
            if progress is not None:
                progress(len(rows))
    return answers


# -- streaming -----------------------------------------------------------------------------
def visible_text(text: str, stop_strings: Sequence[str], whole_sentences: bool = False) -> str:
    """The part of a growing answer that is safe to show now: it stops before a stop string,
    holds back a tail that could be the start of one (and an unfinished UTF-8 character),
    and is stripped, so it is always a prefix of the final answer."""
    cut = first_stop(text, stop_strings)
    if cut is not None:
        return text[:cut].strip()
    for k in range(min(len(text), max(map(len, stop_strings), default=1)), 0, -1):
        if any(s.startswith(text[-k:]) for s in stop_strings):
            text = text[:-k]
            break
    text = text.rstrip("\ufffd")
    if whole_sentences:
        ends = [m.end() for m in SENTENCE_END.finditer(text)]
        text = text[:ends[-1]] if ends else ""
    return text.strip()


class AnswerStreamer(BaseStreamer):
    """Passes answer text to `on_text` as tokens arrive, never showing stop text.

    With `screen` (a predicate on the whole answer so far), text is released one sentence
    at a time and only after the screen accepts everything up to that point; a refusal sets
    `screened` and stops generation, so unscreened text is never shown.
    """

    def __init__(self, tokenizer: Any, style: PromptStyle, on_text: Callable[[str], None],
                 screen: Callable[[str], bool] | None = None) -> None:
        self.tokenizer, self.style, self.on_text, self.screen = tokenizer, style, on_text, screen
        self.ids: list[int] = []
        self.shown = ""
        self.screened = False
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first passes the prompt
            self._prompt_seen = True
            return
        if self.screened:
            return
        self.ids.extend(value.reshape(-1).tolist())
        ends = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        ids = [t for t in self.ids if t not in ends]
        self.release(visible_text(decode(self.tokenizer, ids), self.style.stop_strings, self.screen is not None))

    def release(self, text: str) -> None:
        """Show what `text` adds to what was shown, once the screen (if any) accepts it."""
        if self.screened or len(text) <= len(self.shown) or not text.startswith(self.shown):
            return
        if self.screen is not None and not self.screen(text):
            self.screened = True
            return
        self.on_text(text[len(self.shown):])
        self.shown = text

    def end(self) -> None:
        pass


class StopWhenScreened(transformers.StoppingCriteria):
    """Stops generation once the screen refused the answer, or when `cancelled()` says so (a
    server's client went away): checked after every token."""

    def __init__(self, streamer: AnswerStreamer, cancelled: Callable[[], bool] | None = None) -> None:
        self.streamer, self.cancelled = streamer, cancelled

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        stop = self.streamer.screened or (self.cancelled is not None and self.cancelled())
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


def stream_answer(
    model: Any,
    tokenizer: Any,
    prompt: str,
    config: GenerationConfig,
    on_text: Callable[[str], None],
    style: PromptStyle = DEFAULT_STYLE,
    max_context: int | None = None,
    screen: Callable[[str], bool] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Answer:
    """Answer one prompt, passing the answer's text to `on_text` piece by piece.

    The pieces joined equal `Answer.text`, except when `screen` refused a part: then
    `stop_reason` is "screened", and only the accepted sentences before it were shown.
    `cancelled()` is asked after every token; once it is true generation stops, nothing more
    is shown, and `stop_reason` is "cancelled".
    """
    if config.num_return_sequences != 1:
        raise ValueError("streaming gives one answer: set num_return_sequences to 1")
    budget = prompt_budget(context_length(model, max_context), config.max_new_tokens)
    ids = encode_prompts(tokenizer, [prompt], budget)[0]
    device = model_device(model)
    batch = left_pad([ids], tokenizer.pad_token_id, device)
    streamer = AnswerStreamer(tokenizer, style, on_text, screen)
    with generation_mode(model), seeded(config.seed, device):
        began = time.perf_counter()
        output = _generate(model, tokenizer, batch, config, style, streamer=streamer,
                           stopping_criteria=transformers.StoppingCriteriaList(
                               [StopWhenScreened(streamer, cancelled)]))
        seconds = time.perf_counter() - began
    text, reason, n_new = finish(tokenizer, output[0, batch["input_ids"].shape[1]:].tolist(), style)
    if cancelled is not None and cancelled():
        return Answer(prompt, text, "cancelled", len(ids), n_new, seconds)
    if not streamer.screened:
        streamer.release(text)  # the rest: the tail held back while it could have been a stop string
    if streamer.screened:
        reason = "screened"
    return Answer(prompt, text, reason, len(ids), n_new, seconds)
