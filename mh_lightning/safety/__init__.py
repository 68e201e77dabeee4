"""The chatbot's safety layer: crisis detection, output screening, crisis resources, offline switches.

    guard = SafetyGuard(region="uk")
    decision = guard.check_input(user_text, context=earlier_user_turns)
    shown = guard.check_output(model_answer)

Modules: `normalize` (the canonical text both halves read), `rule_tables` (the rules, pure data),
`rules` (the rule engine and its guards), `classifier` (the fine-tuned MiniLM: pieces, scores,
loading), `runtime` (its forward on ONNX Runtime, built from the weights at load time), `encoder`
(the same model in torch: training and the fallback), `detector` (one decision from both, with
conversation context), `guard` (what chat and generate call), `resources` (helplines, crisis reply,
footer) and `offline`. See docs/safety.md.
"""

from mh_lightning.safety.classifier import (
    ARTEFACT,
    MODEL_NAME,
    MODEL_PACKAGE,
    CrisisClassifier,
    Piece,
    PieceScore,
    load_classifier,
    model_dir,
    model_input,
    one_thread,
    pieces,
)
from mh_lightning.safety.detector import (
    NOT_ASSESSED,
    Judgement,
    RiskAssessment,
    assess,
    combine,
    judge,
    screen_output,
)
from mh_lightning.safety.guard import (
    DISCLAIMER,
    NO_SAFETY_WARNING,
    InputDecision,
    SafetyGuard,
    neutralize_markers,
)
from mh_lightning.safety.normalize import normalize
from mh_lightning.safety.offline import OFFLINE_ENV, enforce_offline
from mh_lightning.safety.resources import (
    DEFAULT_REGION,
    RESOURCES_FILE,
    Helpline,
    Resources,
    ResourcesError,
    crisis_reply,
    load_resources,
    resources_footer,
)
from mh_lightning.safety.rules import CATEGORIES, Detection, detect, screen

__all__ = [
    "ARTEFACT", "CATEGORIES", "DEFAULT_REGION", "DISCLAIMER", "MODEL_NAME", "MODEL_PACKAGE", "NOT_ASSESSED",
    "NO_SAFETY_WARNING", "OFFLINE_ENV", "RESOURCES_FILE", "CrisisClassifier", "Detection", "Helpline",
    "InputDecision", "Judgement", "Piece", "PieceScore", "Resources", "ResourcesError", "RiskAssessment",
    "SafetyGuard", "assess", "combine", "crisis_reply", "detect", "enforce_offline", "judge", "load_classifier",
    "load_resources", "model_dir", "model_input", "neutralize_markers", "normalize", "one_thread", "pieces",
    "resources_footer", "screen", "screen_output",
]
