"""Generation without Lightning: loading a checkpoint or export folder (`loading`), the generation
core and streaming (`generation`), the chat session (`chat`) and export (`export`)."""

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
from mh_lightning.inference.loading import (
    LoadedModel,
    default_device,
    load_base_only,
    load_for_inference,
    load_model,
)

__all__ = [
    "LoadedModel", "default_device", "load_base_only", "load_for_inference", "load_model",
    "SENTENCE_END", "Answer", "AnswerStreamer", "GenerationConfig", "StopWhenScreened", "context_length", "decode",
    "encode_prompts", "eval_mode", "finish", "first_stop", "generate_answers", "generation_mode", "left_pad",
    "model_device", "prompt_budget", "seeded", "stream_answer", "visible_text",
]
