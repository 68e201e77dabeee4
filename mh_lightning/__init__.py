"""mh_lightning: QLoRA fine-tuning of Falcon on HUMAN/ASSISTANT mental-health conversations."""

from mh_lightning import compat

__version__ = "0.1.0"

compat.install()  # the old flat module paths (`mh_lightning.fit`, `mh_lightning.checkpoint`, ...)
