"""The generation core: stop handling (driven by a scripted model), streaming, modes, seeds."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import ids, scripted

from mh_lightning.inference import (
    GenerationConfig,
    generate_answers,
    left_pad,
    stream_answer,
    visible_text,
)
from mh_lightning.prompts import DEFAULT_STYLE

GREEDY = GenerationConfig(greedy=True, max_new_tokens=24)
PROMPT = DEFAULT_STYLE.prompt("How do I deal with sadness?")


def test_stop_string_ends_the_answer_and_is_not_shown(loaded):
    model, tokenizer, style, _ = loaded
    script = ids(tokenizer, " Fine, thanks.\n<HUMAN>: and you?")
    with scripted(loaded, script):
        [answer] = generate_answers(model, tokenizer, [PROMPT], GREEDY, style)
    assert answer.text == "Fine, thanks."
    assert answer.stop_reason == "stop_string"
    # generation stopped on the token that completed "<HUMAN>:", not at max_new_tokens
    assert answer.new_tokens == len(ids(tokenizer, " Fine, thanks.\n<HUMAN>:"))
    assert answer.prompt_tokens == len(ids(tokenizer, PROMPT))


def test_eos_ends_the_answer_and_is_not_shown(loaded):
    model, tokenizer, style, _ = loaded
    walk = ids(tokenizer, " Take a walk.")
    with scripted(loaded, [*walk, tokenizer.eos_token_id, *ids(tokenizer, " junk")]):
        [answer] = generate_answers(model, tokenizer, [PROMPT], GREEDY, style)
    assert (answer.text, answer.stop_reason, answer.new_tokens) == ("Take a walk.", "eos", len(walk) + 1)


def test_assistant_marker_also_stops_and_length_is_reported(loaded):
    model, tokenizer, style, _ = loaded
    with scripted(loaded, " One.\n<ASSISTANT>: Two.", " a"):
        answers = generate_answers(model, tokenizer, [PROMPT, PROMPT], GREEDY, style, batch_size=2)
    assert [(a.text, a.stop_reason) for a in answers] == [("One.", "stop_string"), ("a" + " a" * 23, "length")]
    assert answers[1].new_tokens == GREEDY.max_new_tokens


def test_answers_come_in_prompt_order_with_several_sequences(loaded):
    model, tokenizer, style, _ = loaded
    prompts = [style.prompt(q) for q in ("one", "two", "three")]
    config = GenerationConfig(max_new_tokens=4, num_return_sequences=2, seed=0)
    answers = generate_answers(model, tokenizer, prompts, config, style, batch_size=2)
    assert [a.prompt for a in answers] == [p for p in prompts for _ in range(2)]
    assert all(a.new_tokens <= 4 for a in answers)


def test_progress_counts_prompts_per_batch_and_seconds_are_shares_of_the_batch(loaded):
    model, tokenizer, style, _ = loaded
    prompts = [style.prompt(q) for q in ("one", "two", "three")]
    done = []
    answers = generate_answers(model, tokenizer, prompts, GenerationConfig(max_new_tokens=3, seed=0), style,
                               batch_size=2, progress=done.append)
    assert done == [2, 1]
    # the two answers of the first batch split its time equally: summing gives wall time, not double
    assert answers[0].seconds == answers[1].seconds and answers[0].seconds > 0 and answers[2].seconds > 0


def test_evaluate_answers_like_one_generate_call_with_the_same_seed(loaded):
    from mh_lightning.evaluate import answer_all

    model, tokenizer, style, _ = loaded
    prompts = [style.prompt(q) for q in ("one", "two", "three")]
    config = GenerationConfig(max_new_tokens=6, seed=3)  # sampling: one RNG stream across batches
    once = generate_answers(model, tokenizer, prompts, config, style, batch_size=1)
    shown = answer_all(model, tokenizer, prompts, config, style, 1, None, "tuned")
    assert [a.text for a in shown] == [a.text for a in once]


def test_same_seed_same_text_and_the_global_rng_is_untouched(loaded):
    model, tokenizer, style, _ = loaded
    config = GenerationConfig(max_new_tokens=12, seed=1)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = generate_answers(model, tokenizer, [PROMPT], config, style)[0].text
    assert torch.equal(torch.rand(3), expected_next)  # sampling ran on a forked RNG
    assert generate_answers(model, tokenizer, [PROMPT], config, style)[0].text == first
    other = GenerationConfig(max_new_tokens=12, seed=2)
    assert generate_answers(model, tokenizer, [PROMPT], other, style)[0].text != first


def test_training_mode_and_cache_setting_are_restored(loaded):
    model, tokenizer, style, _ = loaded
    model.train()
    model.config.use_cache = False
    modes = {name: m.training for name, m in model.named_modules()}
    try:
        generate_answers(model, tokenizer, [PROMPT], GenerationConfig(max_new_tokens=3), style)
        assert {name: m.training for name, m in model.named_modules()} == modes
        assert model.training and model.config.use_cache is False
    finally:
        model.eval()


def test_long_prompt_is_cut_from_the_left_with_a_warning(loaded, caplog):
    model, tokenizer, style, _ = loaded
    prompt = style.prompt("I feel anxious all the time. " * 40)
    with caplog.at_level(logging.WARNING, logger="mh_lightning.inference"):
        [answer] = generate_answers(model, tokenizer, [prompt], GenerationConfig(max_new_tokens=4), style,
                                    max_context=64)
    assert answer.prompt_tokens == 60
    assert "cut from the left to its last 60 tokens" in caplog.text


def test_no_room_for_the_prompt_is_a_clear_error(loaded):
    model, tokenizer, style, _ = loaded
    with pytest.raises(ValueError, match="max_new_tokens=64 leaves no room for the prompt in a context of 64"):
        generate_answers(model, tokenizer, [PROMPT], GenerationConfig(max_new_tokens=64), style, max_context=64)


def test_left_pad_aligns_prompts_to_the_right():
    batch = left_pad([[5, 6, 7], [8]], pad_id=0, device=torch.device("cpu"))
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert set(batch) == {"input_ids", "attention_mask"}  # never token_type_ids


@pytest.mark.parametrize(("text", "sentences", "shown"), [
    (" Hello there <HU", False, "Hello there"),
    (" Hello there\n<HUMAN>: more", False, "Hello there"),
    (" Hello <ASSISTANT", False, "Hello"),
    (" Hello <b>", False, "Hello <b>"),
    (" caf\ufffd", False, "caf"),
    (" One. Two", True, "One."),
    (" One. Two.", True, "One."),
    (" One", True, ""),
])
def test_visible_text_holds_back_what_may_be_stop_text(text, sentences, shown):
    assert visible_text(text, DEFAULT_STYLE.stop_strings, sentences) == shown


def test_streaming_shows_the_answer_piece_by_piece_without_stop_text(loaded):
    model, tokenizer, style, _ = loaded
    pieces: list[str] = []
    with scripted(loaded, " I hear you. It is hard.\n<HUMAN>: next"):
        answer = stream_answer(model, tokenizer, PROMPT, GREEDY, pieces.append, style)
    assert "".join(pieces) == answer.text == "I hear you. It is hard."
    assert len(pieces) > 3 and answer.stop_reason == "stop_string"


def test_a_screen_stops_streaming_before_unsafe_text(loaded):
    model, tokenizer, style, _ = loaded
    pieces: list[str] = []
    with scripted(loaded, " I hear you. Something unsafe follows. And more text here."):
        answer = stream_answer(model, tokenizer, PROMPT, GREEDY, pieces.append, style,
                               screen=lambda text: "unsafe" not in text)
    assert pieces == ["I hear you."]
    assert answer.stop_reason == "screened"
    assert answer.new_tokens < len(ids(tokenizer, " I hear you. Something unsafe follows. And more"))


def test_the_final_answer_is_screened_too(loaded):
    model, tokenizer, style, _ = loaded
    pieces: list[str] = []
    script = [*ids(tokenizer, " Fine. Then unsafe"), tokenizer.eos_token_id]
    with scripted(loaded, script):
        answer = stream_answer(model, tokenizer, PROMPT, GREEDY, pieces.append, style,
                               screen=lambda text: "unsafe" not in text)
    assert pieces == ["Fine."] and answer.stop_reason == "screened"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
    ({"temperature": 0}, "temperature must be > 0"),
    ({"top_p": 1.5}, "top_p must be in"),
    ({"greedy": True, "num_return_sequences": 2}, "greedy decoding gives one sequence"),
])
def test_bad_generation_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GenerationConfig(**kwargs)


def test_sampling_is_on_by_default_with_the_recipe_settings(loaded):
    tokenizer = loaded[1]
    hf = GenerationConfig().to_hf(tokenizer)
    assert (hf.do_sample, hf.temperature, hf.top_p, hf.top_k, hf.max_new_tokens) == (True, 0.7, 0.7, 0, 200)
    assert GenerationConfig(greedy=True).to_hf(tokenizer).do_sample is False
