"""Packed rows as a batch of rows: position resets, padding as its own segment, labels at starts masked."""

from __future__ import annotations

import pytest
import torch

from jmedllm.train.collate import PackedRowsCollator, choose_layout


def test_rows_collator_by_hand():
    rows = [
        {"input_ids": [11, 12, 13, 21, 22], "labels": [-100, 12, 13, -100, 22], "seq_lengths": [3, 2]},
        {"input_ids": [31, 32, 33], "labels": [-100, -100, 33], "seq_lengths": [3]},
    ]
    out = PackedRowsCollator(pad_token_id=0)(rows)
    assert out["input_ids"].tolist() == [[11, 12, 13, 21, 22], [31, 32, 33, 0, 0]]
    # positions restart at each example; the 2 pad positions of row 2 form a segment of their own (0, 1)
    assert out["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 0, 1]]
    # labels: padding -100; the first position of every example -100 (already so here)
    assert out["labels"].tolist() == [[-100, 12, 13, -100, 22], [-100, -100, 33, -100, -100]]
    assert "attention_mask" not in out  # transformers builds the block-diagonal mask from position_ids


def test_rows_collator_masks_the_first_label_of_every_example_and_pads_to_a_multiple():
    rows = [{"input_ids": [1, 2, 3, 4], "seq_lengths": [2, 2]}]  # language modelling rows: labels = input_ids
    out = PackedRowsCollator(pad_token_id=9, pad_to_multiple_of=8)(rows)
    assert out["input_ids"].tolist() == [[1, 2, 3, 4, 9, 9, 9, 9]]
    assert out["labels"].tolist() == [[-100, 2, -100, 4, -100, -100, -100, -100]]
    assert out["position_ids"].tolist() == [[0, 1, 0, 1, 0, 1, 2, 3]]
    with pytest.raises(ValueError, match="do not add up"):
        PackedRowsCollator(0)([{"input_ids": [1, 2, 3], "seq_lengths": [2]}])


def test_rows_layout_gives_each_example_its_own_attention(tiny_model_dir):
    """Logits of a row of two examples = logits of each example alone, through the real model."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    a, b = [5, 6, 7, 8], [9, 10, 11]
    batch = PackedRowsCollator(0)([{"input_ids": a + b, "seq_lengths": [4, 3]}, {"input_ids": b, "seq_lengths": [3]}])
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        alone_a = model(input_ids=torch.tensor([a]), use_cache=False).logits
        alone_b = model(input_ids=torch.tensor([b]), use_cache=False).logits
    torch.testing.assert_close(packed[0, :4], alone_a[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(packed[0, 4:], alone_b[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(packed[1, :3], alone_b[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("layout, impl, expected", [
    ("auto", "sdpa", "rows"), ("auto", "eager", "rows"), ("auto", "flash_attention_2", "flat"),
    ("auto", "kernels-community/flash-attn3", "flat"), ("rows", "flash_attention_2", "rows"), ("flat", "sdpa", "flat"),
])
def test_layout_choice(layout, impl, expected):
    assert choose_layout(layout, impl) == expected
