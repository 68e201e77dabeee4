import pytest

from mh_lightning.prompts import DEFAULT_STYLE, PromptFormatError, PromptStyle


def test_training_text_and_generation_prompt_are_exact():
    style = DEFAULT_STYLE
    assert style.text("How are you?", "I am here.") == "<HUMAN>: How are you?\n<ASSISTANT>: I am here."
    assert style.prompt("How are you?") == "<HUMAN>: How are you?\n<ASSISTANT>:"
    assert style.prompt("How are you?") + style.completion("I am here.") == style.text("How are you?", "I am here.")


def test_prompt_with_history_repeats_earlier_turns_in_training_format():
    prompt = DEFAULT_STYLE.prompt("And now?", history=[("Hi", "Hello."), ("Sad", "I hear you.")])
    assert prompt == (
        "<HUMAN>: Hi\n<ASSISTANT>: Hello.\n"
        "<HUMAN>: Sad\n<ASSISTANT>: I hear you.\n"
        "<HUMAN>: And now?\n<ASSISTANT>:"
    )


def test_parse_strips_parts_and_keeps_inner_newlines():
    text = "<HUMAN>:  What helps?  \n<ASSISTANT>: Try this:\n- walk\n- breathe\n\n"
    assert DEFAULT_STYLE.parse(text) == ("What helps?", "Try this:\n- walk\n- breathe")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<ASSISTANT>: hi", "missing the <HUMAN>: marker"),
        ("<HUMAN>: hi", "missing the <ASSISTANT>: marker"),
        ("<HUMAN>: a <HUMAN>: b\n<ASSISTANT>: c", "the <HUMAN>: marker appears 2 times (expected once)"),
        ("<ASSISTANT>: a\n<HUMAN>: b", "<ASSISTANT>: comes before <HUMAN>:"),
        ("intro <HUMAN>: a\n<ASSISTANT>: b", "text before the <HUMAN>: marker"),
        ("<HUMAN>:   \n<ASSISTANT>: b", "the question is empty"),
        ("<HUMAN>: a\n<ASSISTANT>: \n ", "the answer is empty"),
    ],
)
def test_parse_names_the_problem(text, reason):
    with pytest.raises(PromptFormatError) as err:
        DEFAULT_STYLE.parse(text)
    assert str(err.value) == reason


def test_style_round_trips_through_a_checkpoint_dict():
    style = PromptStyle(name="custom", human_tag="<USER>:")
    assert PromptStyle.from_dict(style.to_dict()) == style
    assert PromptStyle.from_dict(None) == DEFAULT_STYLE
    assert DEFAULT_STYLE.stop_strings == ("<HUMAN>:", "<ASSISTANT>:")


def test_marker_pattern_matches_any_spacing_and_case():
    pattern = DEFAULT_STYLE.marker_pattern()
    text = "a <human>: b < ASSISTANT >: c <Human> d <HUMAN>:"
    assert pattern.findall(text) == ["<human>:", "< ASSISTANT >:", "<Human> ", "<HUMAN>:"]
