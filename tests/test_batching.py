"""Batch layouts: the sampler's order, packing's rows, masks and positions, and that a packed
batch has exactly the loss of its conversations run one by one."""

from __future__ import annotations

import pytest
import torch

from mh_lightning.batching import MASKED, ConversationSampler, pack_batch, pack_rows
from mh_lightning.data import (
    IGNORE_INDEX,
    Collator,
    MentalHealthDataModule,
    TokenizedExample,
    load_conversations,
    pad_batch,
    tokenize_conversation,
)
from mh_lightning.model import add_lora, load_base_model, load_tokenizer
from mh_lightning.module import MODEL_INPUTS
from mh_lightning.throughput import batch_token_counts

PAD = 0


def example(input_ids: list[int], n_prompt: int) -> TokenizedExample:
    return TokenizedExample(input_ids, [IGNORE_INDEX] * n_prompt + input_ids[n_prompt:], truncated=False)


# -- the sampler -----------------------------------------------------------------------------
def test_sampler_order_depends_only_on_seed_and_epoch_and_skip_applies_once() -> None:
    lengths = [5, 1, 9, 3, 7, 2, 8, 4]
    first, again = ConversationSampler(lengths, 2, seed=3), ConversationSampler(lengths, 2, seed=3)
    assert list(first) == list(again) and sorted(first) == list(range(8))
    first.set_epoch(1)
    assert list(first) != list(again)
    again.set_epoch(1)
    again.skip = 3
    assert len(again) == 5
    assert list(again) == list(first)[3:]
    assert list(again) == list(first)  # the skip was for the resumed epoch only


def test_group_by_length_sorts_each_group_longest_first_and_ranks_split_it() -> None:
    lengths = [5, 1, 9, 3, 7, 2, 8, 4]
    grouped = list(ConversationSampler(lengths, 2, seed=0, group_by_length=True))
    assert [lengths[i] for i in grouped] == [9, 8, 7, 5, 4, 3, 2, 1]  # one group holds all 8
    ranks = [list(ConversationSampler(lengths, 2, seed=0, group_by_length=True, num_replicas=2, rank=r))
             for r in (0, 1)]
    assert ranks == [grouped[0::2], grouped[1::2]]


# -- packing layout --------------------------------------------------------------------------
def test_pack_rows_balances_longest_first_into_fewest_padded_tokens() -> None:
    # 16 tokens fit two rows of 8: 5+3 and 4+3+1, no padding at all.
    assert pack_rows([5, 4, 3, 3, 1], max_length=8) == [[0, 3], [1, 2, 4]]
    # One per row when nothing fits together; every index exactly once.
    assert pack_rows([6, 7, 8], max_length=8) == [[2], [1], [0]]
    rows = pack_rows([3, 9, 2, 7, 5, 5, 1, 8], max_length=12)
    assert sorted(i for row in rows for i in row) == list(range(8))
    assert all(sum([3, 9, 2, 7, 5, 5, 1, 8][i] for i in row) <= 12 for row in rows)


def test_pack_rows_refuses_an_example_longer_than_a_row() -> None:
    with pytest.raises(ValueError, match="13 tokens does not fit a row of max_length=12"):
        pack_rows([4, 13], max_length=12)


def test_pack_batch_restarts_positions_masks_blocks_and_never_predicts_across_conversations() -> None:
    a = example([11, 12, 13], n_prompt=1)  # labels: -100 12 13
    b = example([21, 22], n_prompt=0)  # labels: 21 22 (train_on_prompt): its first must be dropped
    c = example([31, 32, 33, 34], n_prompt=2)
    batch = pack_batch([a, b, c], PAD, max_length=5, ignore_index=IGNORE_INDEX)
    # Rows: c alone (4 tokens, then padding) and a+b (5 tokens); width 5.
    assert batch["input_ids"].tolist() == [[31, 32, 33, 34, PAD], [11, 12, 13, 21, 22]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0], [0, 1, 2, 0, 1]]
    x = IGNORE_INDEX
    assert batch["labels"].tolist() == [[x, x, 33, 34, x], [x, 12, 13, x, 22]]
    assert batch["num_tokens"].item() == 9
    allowed = (batch["attention_mask"][:, 0] == 0).int().tolist()
    assert allowed[0] == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [0, 0, 0, 0, 1]]
    assert allowed[1] == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 1]]
    assert set(batch["attention_mask"].unique().tolist()) == {0.0, MASKED}
    assert batch_token_counts(batch)[0].item() == 9 and batch_token_counts(batch)[1] == 10


def test_padded_batches_count_tokens_from_their_attention_mask() -> None:
    batch = pad_batch([example([1, 2, 3], 1), example([4], 0)], PAD)
    trained, processed = batch_token_counts(batch)
    assert (trained.item(), processed) == (4, 6)


# -- packing is exact ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_examples() -> list[TokenizedExample]:
    tokenizer = load_tokenizer("builtin:tiny-falcon")
    conversations = load_conversations("builtin:sample")[:6]
    # train_on_prompt: every conversation's first token has a label, the boundary case.
    return [tokenize_conversation(c, tokenizer, 96, train_on_prompt=True) for c in conversations]


def model_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**{k: v for k, v in batch.items() if k in MODEL_INPUTS}).loss


@pytest.mark.slow
@pytest.mark.parametrize("quantization", ["none", "nf4"])
def test_packed_loss_equals_token_weighted_loss_of_conversations_one_by_one(
    quantization: str, tiny_examples: list[TokenizedExample]
) -> None:
    torch.manual_seed(0)
    base = load_base_model("builtin:tiny-falcon", quantization, "float32")
    model = add_lora(base, 8, 16, 0.0, quantized=quantization != "none")
    for name, param in model.named_parameters():
        if "lora_B" in name:  # non-zero adapters, so they take part in the comparison
            torch.nn.init.normal_(param, std=0.05)
    model.eval()
    packed = pack_batch(tiny_examples, PAD, max_length=192, ignore_index=IGNORE_INDEX)
    assert packed["input_ids"].shape[0] < len(tiny_examples)  # rows really hold several conversations
    with torch.no_grad():
        total, count = torch.tensor(0.0, dtype=torch.float64), 0
        for e in tiny_examples:
            alone = pad_batch([e], PAD)
            n = int((alone["labels"][:, 1:] != IGNORE_INDEX).sum())
            total += model_loss(model, alone).double() * n
            count += n
        one_by_one = (total / count).item()
        assert model_loss(model, packed).item() == pytest.approx(one_by_one, abs=1e-5)
        assert model_loss(model, pad_batch(tiny_examples, PAD)).item() == pytest.approx(one_by_one, abs=1e-5)
        # The checks above can fail: predicting a conversation's first token from the one
        # before it, or attending across conversations, moves the loss well past the tolerance.
        lengths = [len(e.input_ids) for e in tiny_examples]
        fill = torch.tensor([sum(lengths[i] for i in row) for row in pack_rows(lengths, 192)])
        real = torch.arange(packed["input_ids"].shape[1]) < fill[:, None]
        starts = (packed["position_ids"] == 0) & real
        starts[:, 0] = False
        assert int(starts.sum()) == len(tiny_examples) - len(fill)
        predicted = dict(packed, labels=torch.where(starts, packed["input_ids"], packed["labels"]))
        assert abs(model_loss(model, predicted).item() - one_by_one) > 1e-4  # 10x the tolerance above
        width = packed["input_ids"].shape[1]
        causal = torch.zeros(width, width).masked_fill_(~torch.ones(width, width, dtype=torch.bool).tril(), MASKED)
        leaky = dict(packed, attention_mask=causal.expand_as(packed["attention_mask"]))
        assert abs(model_loss(model, leaky).item() - one_by_one) > 1e-4  # 10x the tolerance above


# -- the data module -------------------------------------------------------------------------
def test_data_module_packs_each_micro_batch_of_the_sampler() -> None:
    data = MentalHealthDataModule(path="builtin:sample", val_fraction=0.125, max_length=256, batch_size=4,
                                  packing=True)
    data.connect(load_tokenizer("builtin:tiny-falcon"))
    data.setup("fit")
    loader = data.train_dataloader()
    assert isinstance(loader.collate_fn, Collator) and loader.collate_fn.pack_to == 256
    assert loader.batch_size == 4  # conversations per micro-batch: resume skips count them
    order = list(loader.sampler)
    batches = list(loader)
    lengths = [len(data.train_examples[i].input_ids) for i in order]
    assert [int(b["num_tokens"]) for b in batches] == [sum(lengths[i : i + 4]) for i in range(0, len(order), 4)]
    assert all(b["input_ids"].shape[1] <= 256 for b in batches)
    labelled = sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in batches)
    # The same label count as padded batches of the same conversations (first labels are prompt).
    assert labelled == sum(sum(t != IGNORE_INDEX for t in data.train_examples[i].labels[1:]) for i in order)
