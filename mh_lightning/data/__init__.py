"""Conversations in, masked token batches out: loading and validation (`loading`), tokenization
and label masking (`tokenization`), the sampler and packing (`batching`), and the
LightningDataModule that puts them together (`datamodule`)."""

from mh_lightning.data.batching import ConversationSampler, pack_batch, pack_rows
from mh_lightning.data.datamodule import MentalHealthDataModule
from mh_lightning.data.loading import (
    BUILTIN_SAMPLE,
    FILE_LOADERS,
    Conversation,
    OnBadRows,
    check_columns,
    load_conversations,
    split_conversations,
)
from mh_lightning.data.tokenization import IGNORE_INDEX, Collator, TokenizedExample, pad_batch, tokenize_conversation
from mh_lightning.errors import DataError

__all__ = [
    "BUILTIN_SAMPLE", "FILE_LOADERS", "IGNORE_INDEX", "Collator", "Conversation", "ConversationSampler", "DataError",
    "MentalHealthDataModule", "OnBadRows", "TokenizedExample", "check_columns", "load_conversations", "pack_batch",
    "pack_rows", "pad_batch", "split_conversations", "tokenize_conversation",
]
