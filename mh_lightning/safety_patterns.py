"""Old import path of the rule engine; the code lives in `mh_lightning.safety.rules` and `.normalize`."""

from mh_lightning.safety.normalize import normalize
from mh_lightning.safety.rules import CATEGORIES, OUTPUT_RULES, RULES, Detection, Rule, detect, find, screen

__all__ = ["CATEGORIES", "OUTPUT_RULES", "RULES", "Detection", "Rule", "detect", "find", "normalize", "screen"]
