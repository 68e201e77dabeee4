"""mh_lightning: QLoRA fine-tuning of Falcon on HUMAN/ASSISTANT mental-health conversations."""

__version__ = "0.1.0"
