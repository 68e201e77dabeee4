"""The LightningDataModule: conversations split deterministically, tokenized once with the
tokenizer it is handed (`connect`), batched by the seeded, DDP-aware sampler."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from mh_lightning.data.batching import ConversationSampler
from mh_lightning.data.loading import (
    Conversation,
    OnBadRows,
    check_columns,
    load_conversations,
    split_conversations,
)
from mh_lightning.data.tokenization import Collator, TokenizedExample, tokenize_conversation
from mh_lightning.errors import DataError
from mh_lightning.prompts import DEFAULT_STYLE

log = logging.getLogger(__name__)


class MentalHealthDataModule(pl.LightningDataModule):
    def __init__(
        self,
        path: str = "heliosbrahma/mental_health_chatbot_dataset",
        text_column: str = "text",
        question_column: str | None = None,
        answer_column: str | None = None,
        split: str = "train",
        on_bad_rows: OnBadRows = "error",
        val_fraction: float = 0.1,
        seed: int = 42,
        max_length: int = 512,
        train_on_prompt: bool = False,
        group_by_length: bool = False,
        packing: bool = False,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        tokenizer_name: str = "builtin:tiny-falcon",
    ) -> None:
        """Conversations for causal-LM fine-tuning.

        Args:
            path: hub dataset id, local .parquet/.csv/.json/.jsonl file, save_to_disk folder,
                or `builtin:sample` (the small sample shipped with the package).
            text_column: column holding `<HUMAN>: ...\\n<ASSISTANT>: ...` text.
            question_column: column holding the question (with `answer_column`, instead of `text_column`).
            answer_column: column holding the answer.
            split: split of a hub dataset or DatasetDict folder to read.
            on_bad_rows: `error` stops at the first bad row; `skip` trains on the others and logs them.
            val_fraction: share of conversations held out for validation (split fixed by `seed`).
            seed: seed of the train/val split.
            max_length: tokens per example; longer examples are cut at the end.
            train_on_prompt: also train on the question tokens (the original recipe did).
            group_by_length: batch examples of similar length together (less padding).
            packing: lay each micro-batch out with several conversations per row (up to
                `max_length` tokens) and block-diagonal attention: the same conversations and
                loss as padded batches, with far less padding.
            batch_size: micro-batch size for training.
            eval_batch_size: micro-batch size for validation (default: `batch_size`).
            num_workers: DataLoader worker processes.
            tokenizer_name: the tokenizer `connect` is handed (linked to `model.model_name` by the CLI).
        """
        super().__init__()
        self.save_hyperparameters()
        if on_bad_rows not in ("error", "skip"):
            raise DataError(f"data.on_bad_rows must be 'error' or 'skip', got {on_bad_rows!r}")
        # Settings that cannot work fail here, at construction, before any model is loaded.
        check_columns(text_column, question_column, answer_column)
        eval_size = 1 if eval_batch_size is None else eval_batch_size
        for key, value, least in (("max_length", max_length, 2), ("batch_size", batch_size, 1),
                                  ("eval_batch_size", eval_size, 1), ("num_workers", num_workers, 0)):
            if value < least:
                raise DataError(f"data.{key} must be at least {least}, got {value}")
        if not 0 <= val_fraction < 1:
            raise DataError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        self.style = DEFAULT_STYLE
        self.tokenizer: Any = None
        self.train_conversations: list[Conversation] = []
        self.val_conversations: list[Conversation] = []
        self.train_examples: list[TokenizedExample] = []
        self.val_examples: list[TokenizedExample] = []

    def conversations(self) -> list[Conversation]:
        h = self.hparams
        return load_conversations(h.path, h.text_column, h.question_column, h.answer_column,
                                  h.on_bad_rows, h.split, self.style)

    def connect(self, tokenizer: Any) -> None:
        """Hand over the model's tokenizer (the CLI loads the one `tokenizer_name` names)."""
        self.tokenizer = tokenizer

    def setup(self, stage: str | None = None) -> None:
        if self.train_examples or self.val_examples:
            return  # tokenized once, reused by every stage
        if self.tokenizer is None:
            raise RuntimeError("MentalHealthDataModule.setup: no tokenizer; call connect(tokenizer) first")
        h = self.hparams
        self.train_conversations, self.val_conversations = split_conversations(
            self.conversations(), h.val_fraction, h.seed
        )
        self.train_examples = self._tokenize(self.train_conversations, "train")
        self.val_examples = self._tokenize(self.val_conversations, "val")

    def _tokenize(self, conversations: Sequence[Conversation], name: str) -> list[TokenizedExample]:
        h = self.hparams
        examples = [tokenize_conversation(c, self.tokenizer, h.max_length, h.train_on_prompt, self.style)
                    for c in conversations]
        cut = sum(e.truncated for e in examples)
        if cut:
            log.warning("%s: %d of %d %s examples are longer than max_length=%d and were cut",
                        h.path, cut, len(examples), name, h.max_length)
        return examples

    def _loader(self, examples: list[TokenizedExample], batch_size: int,
                sampler: ConversationSampler | None = None) -> DataLoader:
        return DataLoader(
            examples,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=Collator(self.tokenizer.pad_token_id, self.hparams.max_length if self.hparams.packing else None),
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            # Its own generator: making a loader iterator must not draw from the global one,
            # or a resumed run's dropout masks would drift from an uninterrupted run's.
            generator=torch.Generator().manual_seed(self.hparams.seed),
        )

    def train_sampler(self) -> ConversationSampler:
        """Seeded by `seed + epoch` and split across processes; Lightning keeps it under DDP."""
        trainer = self.trainer
        h = self.hparams
        return ConversationSampler(
            [len(e.input_ids) for e in self.train_examples], h.batch_size, shuffle=True,
            seed=h.seed, group_by_length=h.group_by_length,
            num_replicas=trainer.world_size if trainer else 1, rank=trainer.global_rank if trainer else 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_examples, self.hparams.batch_size, self.train_sampler())

    def val_dataloader(self) -> DataLoader:
        if not self.val_examples:
            return []  # type: ignore[return-value]  # val_fraction=0: Lightning skips validation
        # Lightning adds a (non-shuffling) distributed sampler here under DDP.
        return self._loader(self.val_examples, self.hparams.eval_batch_size or self.hparams.batch_size)
