"""The crisis classifier's model in torch: MiniLM with a crisis/category head and an answer head.

Training (scripts/train_safety_classifier.py) and the torch fallback use it; inference normally
runs the same weights on ONNX Runtime (`runtime.py`), which needs neither torch nor transformers:
this module is imported only when they are wanted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

HEAD_OUTPUTS = 5  # the crisis logit and one logit per category of classifier.CATEGORIES


class CrisisModel(torch.nn.Module):
    """MiniLM, masked mean pooling and a linear head: column 0 is the crisis logit, columns 1-4 the
    category logits (CATEGORIES order). `bottom` is the stock encoder up to `frozen` layers (training
    computes it once per text), `top` the fine-tuned layers and the head."""

    def __init__(self, bert: torch.nn.Module, frozen: int) -> None:
        super().__init__()
        self.embeddings, self.layers, self.frozen = bert.embeddings, bert.encoder.layer, frozen
        self.head = torch.nn.Linear(bert.config.hidden_size, HEAD_OUTPUTS)
        # generated answers: the unsafe logit on `answer_features` (2 x hidden), fitted by a regression after
        # the fine-tuning (training re-seeds before it: what this draws does not change the dropout stream)
        self.output = torch.nn.Linear(2 * bert.config.hidden_size, 1)

    @staticmethod
    def additive(mask: torch.Tensor) -> torch.Tensor:
        return (1.0 - mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min

    def bottom(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden, additive = self.embeddings(input_ids=input_ids), self.additive(attention_mask)
        for layer in self.layers[:self.frozen]:
            hidden = layer(hidden, attention_mask=additive)[0]
        return hidden

    def top(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        additive = self.additive(attention_mask)
        for layer in self.layers[self.frozen:]:
            hidden = layer(hidden, attention_mask=additive)[0]
        return self.head(self.pool(hidden, attention_mask))

    @staticmethod
    def pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def answer_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """What the answer head reads, [B, 2 x hidden]: the pooled stock layers (what a text says) next
        to the pooled fine-tuned layers (how close it sits to a person in crisis). Either alone flagged
        supportive list-style answers ("5. Prioritize your well-being: ...") far more often."""
        hidden = self.bottom(input_ids, attention_mask)
        stock, additive = self.pool(hidden, attention_mask), self.additive(attention_mask)
        for layer in self.layers[self.frozen:]:
            hidden = layer(hidden, attention_mask=additive)[0]
        return torch.cat([stock, self.pool(hidden, attention_mask)], dim=-1)

    def output_logit(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The answer head (a logistic regression on `answer_features`): the unsafe-answer logit."""
        return self.output(self.answer_features(input_ids, attention_mask))[:, 0]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.top(self.bottom(input_ids, attention_mask), attention_mask)

    def trained_state(self) -> dict[str, torch.Tensor]:
        """What the artefact holds: the fine-tuned layers and the head."""
        def trained(name: str) -> bool:
            return name.startswith(("head.", "output.")) or (
                name.startswith("layers.") and int(name.split(".")[1]) >= self.frozen)

        return {name: tensor for name, tensor in self.state_dict().items() if trained(name)}


def load_bert(path: Path) -> tuple[Any, torch.nn.Module]:
    """The stock tokenizer and MiniLM encoder in `path`, from local files only, fp32, eval mode."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    bert = AutoModel.from_pretrained(path, local_files_only=True)
    return tokenizer, bert.to("cpu", torch.float32).eval()
