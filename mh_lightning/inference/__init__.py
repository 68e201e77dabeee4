"""Generation without Lightning: the generation core, streaming, the chat session and export."""

from mh_lightning.inference.generation import (
    SENTENCE_END,
    Answer,
    AnswerStreamer,
    GenerationConfig,
    StopWhenScreened,
    context_length,
    decode,
    encode_prompts,
    eval_mode,
    finish,
    first_stop,
    generate_answers,
    generation_mode,
    left_pad,
    model_device,
    prompt_budget,
    seeded,
    stream_answer,
    visible_text,
)

__all__ = [
    "SENTENCE_END", "Answer", "AnswerStreamer", "GenerationConfig", "StopWhenScreened", "context_length", "decode",
    "encode_prompts", "eval_mode", "finish", "first_stop", "generate_answers", "generation_mode", "left_pad",
    "model_device", "prompt_budget", "seeded", "stream_answer", "visible_text",
]
