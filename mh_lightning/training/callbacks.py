"""What the model learned, visible while it trains: sample answers and the gradient norm.

- `SampleCallback` answers a fixed set of validation questions at each validation (greedy,
  with the training prompt format) and writes question, reference and answer to TensorBoard
  as text at the current step. Only validation questions are used: answers to training
  questions would show memorisation, not learning.
- `GradNormMonitor` logs `train/grad_norm`, the norm of the trainable (LoRA) gradients before
  clipping, once per optimizer step.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn

if TYPE_CHECKING:
    from mh_lightning.data.loading import Conversation
    from mh_lightning.inference.generation import Answer


class GradNormMonitor(pl.Callback):
    def __init__(self, norm_type: float = 2.0) -> None:
        """Log `train/grad_norm` at every optimizer step.

        Args:
            norm_type: the p of the p-norm over all trainable gradients seen as one vector.
        """
        self.norm_type = float(norm_type)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        # Called after AMP unscaling and before clipping, so this is the norm clipping sees.
        # Under FSDP/DeepSpeed each process holds a shard: the value is that shard's norm.
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if grads:
            norm = torch.nn.utils.get_total_norm(grads, self.norm_type)
            pl_module.log("train/grad_norm", norm, on_step=True, on_epoch=False)


class SampleCallback(pl.Callback):
    def __init__(self, num_questions: int = 4, max_new_tokens: int = 64, batch_size: int = 4) -> None:
        """Answer validation questions at each validation and log them to TensorBoard.

        Args:
            num_questions: how many validation questions to answer (the first ones of the
                validation split, the same every time); 0 turns the samples off.
            max_new_tokens: longest answer, in tokens (greedy decoding).
            batch_size: questions generated together.
        """
        if num_questions < 0 or max_new_tokens < 1 or batch_size < 1:
            raise ValueError("samples.num_questions must be >= 0, samples.max_new_tokens and "
                             f"samples.batch_size >= 1; got {num_questions}, {max_new_tokens}, {batch_size}")
        self.num_questions = num_questions
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Rank 0 generates alone: under DDP the inner model is not wrapped, so no collective
        # runs here. The sanity check is skipped: its step-0 answers are the base model's.
        if self.num_questions == 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        writer = self._writer(trainer)
        questions = self._questions(trainer) if writer is not None else []
        if not questions:
            return
        answers = self._answer(trainer, pl_module, questions)
        for index, (conversation, answer) in enumerate(zip(questions, answers, strict=True)):
            text = sample_markdown(conversation, answer, trainer.global_step)
            writer.add_text(f"samples/question_{index}", text, global_step=trainer.global_step)

    def _answer(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                questions: list[Conversation]) -> list[Answer]:
        from mh_lightning.inference.generation import GenerationConfig, generate_answers

        datamodule = trainer.datamodule
        config = GenerationConfig(max_new_tokens=self.max_new_tokens, greedy=True)
        prompts = [pl_module.style.prompt(c.question) for c in questions]
        with trainer.precision_plugin.forward_context():  # the dtype/autocast of training
            return generate_answers(pl_module.model, datamodule.tokenizer, prompts, config,
                                    style=pl_module.style, batch_size=self.batch_size)

    def _writer(self, trainer: pl.Trainer) -> Any | None:
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                return logger.experiment
        self._disable("no TensorBoardLogger is configured (trainer.logger)")
        return None

    def _questions(self, trainer: pl.Trainer) -> list[Conversation]:
        conversations = getattr(trainer.datamodule, "val_conversations", None)
        if not conversations:
            self._disable("the data module has no validation conversations (data.val_fraction=0?)")
            return []
        return list(conversations[: self.num_questions])

    def _disable(self, reason: str) -> None:
        rank_zero_warn(f"samples: no sample answers will be logged: {reason}. "
                       "Set samples.num_questions=0 to silence this.")
        self.num_questions = 0  # warn once, then stay off


def sample_markdown(conversation: Conversation, answer: Answer, step: int) -> str:
    """One sample as TensorBoard markdown; `<HUMAN>`-like text is escaped so it stays visible."""

    def show(text: str) -> str:
        return html.escape(text, quote=False).replace("\n", "  \n")  # keep the answer's line breaks

    return (
        f"**Question** (data row {conversation.row}): {show(conversation.question)}\n\n"
        f"**Reference**: {show(conversation.answer)}\n\n"
        f"**Answer** at step {step} ({answer.new_tokens} new tokens, stopped by {answer.stop_reason}): "
        f"{show(answer.text)}"
    )
