"""Text metrics against values computed by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from mh_lightning.data import IGNORE_INDEX, TokenizedExample
from mh_lightning.metrics import answer_perplexity, answer_stats, text_scores


def test_rouge_is_the_mean_f_measure_over_pairs() -> None:
    # Pair 1: 5 of 6 unigrams shared (the x2, cat, on, mat): P = R = F = 5/6.
    #   bigrams: {the cat, on the, the mat} of 5 each side: F = 3/5; LCS "the cat on the mat": 5/6.
    # Pair 2: "i feel calm" vs "i feel very calm today": unigrams P = 3/3, R = 3/5, F = 0.75;
    #   bigrams {i feel} of 2 and 4: P = 1/2, R = 1/4, F = 1/3; LCS "i feel calm": F = 0.75.
    scores = text_scores(
        ["The cat sat on the mat", "I feel calm"],
        ["the cat is on the mat", "i feel very calm today"],
    )
    assert scores["rouge1_f"] == pytest.approx((5 / 6 + 0.75) / 2, abs=1e-6)
    assert scores["rouge2_f"] == pytest.approx((3 / 5 + 1 / 3) / 2, abs=1e-6)
    assert scores["rougeL_f"] == pytest.approx((5 / 6 + 0.75) / 2, abs=1e-6)


def test_bleu4_with_punctuation_split_off() -> None:
    # 13a tokens: "the cat sat on the mat ." vs "the cat sat on a mat ." (7 tokens each, no
    # brevity penalty). Clipped n-gram precisions: 6/7, 4/6, 2/5, 1/4 -> product 2/35.
    scores = text_scores(["the cat sat on the mat."], ["the cat sat on a mat."])
    assert scores["bleu4"] == pytest.approx((2 / 35) ** 0.25, abs=1e-6)


def test_bleu4_is_zero_without_a_shared_four_gram_and_one_for_identical_text() -> None:
    assert text_scores(["you are not alone"], ["you are never alone"])["bleu4"] == 0.0
    same = text_scores(["Talk to someone you trust today."], ["Talk to someone you trust today."])
    assert same == pytest.approx({"rouge1_f": 1.0, "rouge2_f": 1.0, "rougeL_f": 1.0, "bleu4": 1.0}, abs=1e-6)


def test_text_scores_refuse_mismatched_lists() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        text_scores(["a", "b"], ["a"])


class FixedDistribution(torch.nn.Module):
    """Predicts p = [1/2, 1/4, 1/8, 1/8] over a 4-token vocabulary at every position."""

    def __init__(self) -> None:
        super().__init__()
        self.log_p = torch.nn.Parameter(torch.tensor([0.5, 0.25, 0.125, 0.125]).log())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.log_p.expand(*input_ids.shape, 4))


@pytest.mark.parametrize("batch_size", [1, 2])
def test_answer_perplexity_counts_labelled_tokens_only(batch_size: int) -> None:
    # Labelled targets: token 0 (p 1/2), token 1 (p 1/4), token 3 (p 1/8): NLL = 6 ln 2 over
    # 3 tokens, so perplexity = exp(2 ln 2) = 4. The prompt token and the padding (pad id 0,
    # p 1/2) carry no label and would change the value if they were counted.
    examples = [
        TokenizedExample(input_ids=[2, 0, 1], labels=[IGNORE_INDEX, 0, 1], truncated=False),
        TokenizedExample(input_ids=[3, 3], labels=[IGNORE_INDEX, 3], truncated=False),
    ]
    model = FixedDistribution().train()
    assert answer_perplexity(model, examples, pad_id=0, batch_size=batch_size) == pytest.approx(4.0, abs=1e-5)
    assert model.training  # restored


def test_answer_stats() -> None:
    answers = [
        SimpleNamespace(text="You are not alone.", new_tokens=6, stop_reason="eos"),
        SimpleNamespace(text="Breathe", new_tokens=2, stop_reason="stop_string"),
        SimpleNamespace(text="a b c d e f", new_tokens=10, stop_reason="length"),
        SimpleNamespace(text="", new_tokens=1, stop_reason="eos"),
    ]
    stats = answer_stats(answers)
    assert stats == {"mean_answer_tokens": 19 / 4, "mean_answer_words": 11 / 4, "stop_rate": 0.75}
