"""Conversations in, masked token batches out: loading and validation, tokenization and label
masking, batching and packing, and the LightningDataModule that puts them together."""

from mh_lightning.data.batching import ConversationSampler, pack_batch, pack_rows
from mh_lightning.data.loading import (
    BUILTIN_SAMPLE,
    FILE_LOADERS,
    IGNORE_INDEX,
    Collator,
    Conversation,
    DataError,
    MentalHealthDataModule,
    OnBadRows,
    TokenizedExample,
    check_columns,
    load_conversations,
    pad_batch,
    split_conversations,
    tokenize_conversation,
)

__all__ = [
    "BUILTIN_SAMPLE", "FILE_LOADERS", "IGNORE_INDEX", "Collator", "Conversation", "ConversationSampler", "DataError",
    "MentalHealthDataModule", "OnBadRows", "TokenizedExample", "check_columns", "load_conversations", "pack_batch",
    "pack_rows", "pad_batch", "split_conversations", "tokenize_conversation",
]
