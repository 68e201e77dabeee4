"""Figures of generated answers, computed with torchmetrics.

- `text_scores`: ROUGE-1/2/L F-measure (mean over answer/reference pairs) and corpus BLEU-4
  (sacreBLEU's definition: `13a` tokenization, brevity penalty, no smoothing).
- `answer_perplexity`: perplexity of the reference answers given their questions, over the
  tokens that carry loss in training (answer + EOS), token-weighted like `val/perplexity`.
- `answer_stats`: mean answer length and stop rate (share of answers that ended by EOS or a
  stop string rather than by running into `max_new_tokens`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torchmetrics.text import Perplexity, ROUGEScore, SacreBLEUScore

from mh_lightning.data.tokenization import IGNORE_INDEX, TokenizedExample, pad_batch
from mh_lightning.inference.generation import eval_mode, model_device

if TYPE_CHECKING:
    from mh_lightning.inference.generation import Answer

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")
STOPPED = ("eos", "stop_string")  # the `Answer.stop_reason`s that mean the model ended the answer


def text_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """`rouge1_f`, `rouge2_f`, `rougeL_f` and `bleu4` of `predictions` against `references`."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("no answers to score")
    rouge = ROUGEScore(rouge_keys=ROUGE_KEYS)(list(predictions), list(references))
    bleu = SacreBLEUScore(n_gram=4, tokenize="13a")(list(predictions), [[r] for r in references])
    scores = {f"{key}_f": rouge[f"{key}_fmeasure"].item() for key in ROUGE_KEYS}
    scores["bleu4"] = bleu.item()
    return scores


def answer_stats(answers: Sequence[Answer]) -> dict[str, float]:
    """`mean_answer_tokens`, `mean_answer_words` and `stop_rate` of generated answers."""
    if not answers:
        raise ValueError("no answers to measure")
    n = len(answers)
    return {
        "mean_answer_tokens": sum(a.new_tokens for a in answers) / n,
        "mean_answer_words": sum(len(a.text.split()) for a in answers) / n,
        "stop_rate": sum(a.stop_reason in STOPPED for a in answers) / n,
    }


def answer_perplexity(
    model: torch.nn.Module,
    examples: Sequence[TokenizedExample],
    pad_id: int,
    batch_size: int = 8,
) -> float:
    """exp(mean negative log-likelihood) of the labelled tokens of `examples` under `model`.

    `model(input_ids=..., attention_mask=...)` must return `.logits`; labels equal to
    `IGNORE_INDEX` (prompt and padding) are left out, as in training.
    """
    if not examples:
        raise ValueError("no examples to score")
    device = model_device(model)
    metric = Perplexity(ignore_index=IGNORE_INDEX).to(device)
    with eval_mode(model):  # no LoRA dropout
        for start in range(0, len(examples), batch_size):
            batch = pad_batch(examples[start : start + batch_size], pad_id)
            logits = model(input_ids=batch["input_ids"].to(device),
                           attention_mask=batch["attention_mask"].to(device)).logits
            # Position t predicts token t + 1.
            metric.update(logits[:, :-1].float(), batch["labels"][:, 1:].to(device))
    return metric.compute().item()
