"""Old import path of the learned classifier; the code lives in `mh_lightning.safety.classifier`."""

from mh_lightning.safety.classifier import (
    ARTEFACT,
    MODEL_NAME,
    MODEL_PACKAGE,
    CrisisClassifier,
    load_classifier,
    model_dir,
    model_input,
    one_thread,
    spell_emoji,
)

__all__ = ["ARTEFACT", "MODEL_NAME", "MODEL_PACKAGE", "CrisisClassifier", "load_classifier", "model_dir",
           "model_input", "one_thread", "spell_emoji"]
