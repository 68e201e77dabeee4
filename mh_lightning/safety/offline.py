"""Keep conversations on this machine: no hub downloads, no telemetry, no tracking."""

from __future__ import annotations

import os
import sys

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1", "DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",  # never send a stored hub token anywhere
    "WANDB_MODE": "offline",
    "ORT_DISABLE_TELEMETRY": "1",  # onnxruntime (the safety classifier): no device id, no upload
}


def enforce_offline() -> None:
    """Keep conversations on this machine: no hub downloads, no telemetry, no tracking.

    Sets the environment switches, and also the flags of Hugging Face libraries that were
    already imported (they read the environment once, at import).
    """
    os.environ.update(OFFLINE_ENV)
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None:
        hub.HF_HUB_OFFLINE = hub.HF_HUB_DISABLE_TELEMETRY = hub.HF_HUB_DISABLE_IMPLICIT_TOKEN = True
    transformers_hub = sys.modules.get("transformers.utils.hub")
    if transformers_hub is not None:
        transformers_hub._is_offline_mode = True
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        datasets_config.HF_HUB_OFFLINE = datasets_config.HF_DATASETS_OFFLINE = True
