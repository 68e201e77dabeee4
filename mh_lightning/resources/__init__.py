"""Files shipped inside the package. Their paths are defined here, and only here."""

from pathlib import Path

FOLDER = Path(__file__).parent
SAMPLE_CONVERSATIONS = FOLDER / "sample_conversations.jsonl"  # `builtin:sample`, and the tiny tokenizers' corpus
