"""The crisis detector: the rules explain, the fine-tuned classifier judges context.

    assess("I wrote letters to everyone I love")                       # not a crisis alone
    assess("tonight is the night", context=["I wrote letters ...", "I have what I need ..."])  # crisis

A message is a crisis when the classifier's calibrated probability for its most worrying piece
(the message, a pair of its sentences, or the conversation's last turns with it) reaches
`threshold`, or when a precise rule fires and the classifier does not clearly disagree (its
probability reaches the lower `rule_threshold`): a rule hit in a past, quoted, fictional or third-person
context is vetoed by the model, not by hand-written guards. Both thresholds come from the artefact
(chosen on the calibration split by scripts/train_safety_classifier.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mh_lightning.safety.classifier import CONTEXT_TURNS, Piece, PieceScore, load_classifier, pieces
from mh_lightning.safety.rules import CATEGORIES, Detection, detect, screen


@dataclass(frozen=True)
class RiskAssessment:
    """`is_crisis`: risk of harm to self or others, or danger, now or soon. `category`: `suicide`,
    `self_harm`, `harm_to_others`, `abuse_or_danger` or `none`. `matched`: what decided it (rules with
    the normalised text they matched, the classifier's probability and the piece it read).
    `informational`: asks about suicide or self-harm without signalling personal risk. `score`: the
    classifier's calibrated crisis probability (None where it did not run)."""

    is_crisis: bool
    category: str = "none"
    matched: tuple[str, ...] = ()
    informational: bool = False
    score: float | None = None


NOT_ASSESSED = RiskAssessment(is_crisis=False)


def _evidence(best: PieceScore) -> str:
    text = best.piece.text if len(best.piece.text) <= 120 else best.piece.text[:117] + "..."
    return f'model: {best.probability:.2f} on {best.piece.kind} "{text}"'


def combine(rules: Detection, best: PieceScore, threshold: float, rule_threshold: float) -> RiskAssessment:
    """One decision from the rules' detection and the classifier's most worrying piece (see module doc)."""
    fired = rules.category != "none"
    if best.probability >= threshold or (fired and best.probability >= rule_threshold):
        category = rules.category if fired else best.category
        return RiskAssessment(True, category, (*rules.matched, _evidence(best)), False, best.probability)
    vetoed = (f"vetoed by the model: {'; '.join(rules.matched)}",) if fired else ()
    return RiskAssessment(False, "none", (*vetoed, _evidence(best)), rules.informational, best.probability)


@dataclass(frozen=True)
class Judgement:
    assessment: RiskAssessment  # the message, read with its conversation
    earlier_crisis: bool  # the earlier turns were a crisis on their own


def judge(text: str, context: Sequence[str] = ()) -> Judgement:
    """Assess `text` with the user's earlier turns (oldest first); one batched forward in all.

    The conversation piece (last turns + message) counts only when the earlier turns alone were not a
    crisis: it catches a build-up ("letters" / "the cabinet" / "tonight"), and does not repeat the
    crisis reply for every later "thank you" (those get the resources footer instead)."""
    classifier = load_classifier()
    found = pieces(text, context)
    recent = [turn for turn in context if turn.strip()][-CONTEXT_TURNS:]
    if recent:  # the same turns without this message, in the same forward
        found.append(Piece("earlier", " ".join(recent)))
    scores = classifier.score_pieces(found)
    threshold, rule_threshold = classifier.threshold, classifier.meta["rule_threshold"]
    before = next((s for s in scores if s.piece.kind == "earlier"), None)
    earlier_crisis = before is not None and before.probability >= threshold
    usable = [s for s in scores if s.piece.kind not in ("earlier", *(["conversation"] if earlier_crisis else []))]
    best = max(usable, key=lambda s: s.probability)
    assessment = combine(detect(text), best, threshold, rule_threshold)
    earlier_crisis = earlier_crisis or any(detect(turn).category != "none" for turn in context[-10:])
    return Judgement(assessment, earlier_crisis)


def assess(text: str, context: Sequence[str] = ()) -> RiskAssessment:
    """Assess a user message, optionally with the user's earlier messages of the conversation."""
    return judge(text, context).assessment


def screen_output(text: str) -> RiskAssessment:
    """Flag generated text that instructs or encourages harm (methods, doses, encouragement, hiding it):
    the output rules (their category), or the classifier's answer head reaching `output_threshold` on
    any piece of the answer (category `unsafe_answer`)."""
    found = screen(text)
    if found.category != "none":
        return RiskAssessment(True, found.category, found.matched, False)
    classifier = load_classifier()
    probability = classifier.unsafe_answer(text)
    if probability >= classifier.meta["output_threshold"]:
        return RiskAssessment(True, "unsafe_answer", (f"model: {probability:.2f} unsafe answer",), False, probability)
    return RiskAssessment(False, score=probability)


__all__ = ["CATEGORIES", "NOT_ASSESSED", "Judgement", "RiskAssessment", "assess", "combine", "judge", "screen_output"]
