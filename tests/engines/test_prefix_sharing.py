"""Pure parts of prefix-shared scoring: tokenisation boundary, truncation, tree mask, packing."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from jmedllm.engines.prefix_sharing import (  # noqa: E402
    EncodedRequest,
    encode_request,
    left_pad,
    move_trailing_whitespace,
    pack_batch,
    tree_attention_mask,
)


def char_ids(text: str) -> list[int]:
    """A toy tokenizer, one id per character, so that expected ids can be written by hand."""
    return [ord(c) for c in text]


def test_trailing_whitespace_moves_to_the_continuation():
    assert move_trailing_whitespace("答え: ", "a") == ("答え:", " a")
    assert move_trailing_whitespace("Q\n\n", "b") == ("Q", "\n\nb")
    assert move_trailing_whitespace("答え：", "ａ") == ("答え：", "ａ")


def test_encode_request_scores_the_whitespace_with_the_continuation():
    r = encode_request(0, "ab ", ["c"], char_ids, max_length=100)
    assert r.context == (97, 98)  # "ab"
    assert r.continuations == ((32, 99),)  # " c"
    assert r.n_chars == (1,)  # characters of the continuation as given, for length normalisation


def test_encode_request_truncates_the_context_from_the_left():
    # longest continuation "xy" has 2 tokens; its model input is context + "x", so the
    # context may keep max_length - (2 - 1) = 5 - 1 = 4 tokens: "abcdef" -> "cdef", 2 cut.
    r = encode_request(3, "abcdef", ["xy", "z"], char_ids, max_length=5)
    assert r.context == tuple(char_ids("cdef"))
    assert r.truncated_tokens == 2
    assert r.packed_length == 4 + (2 - 1) + (1 - 1)  # context + every continuation but its last token
    assert r.scored_span == 1 + 1 + 0


def test_encode_request_rejects_what_cannot_fit_or_be_scored():
    with pytest.raises(ValueError, match="request 7: a continuation of 3 tokens does not fit in max_length=2"):
        encode_request(7, "abc", ["xyz"], char_ids, max_length=2)
    with pytest.raises(ValueError, match="request 1, continuation 1: empty continuation"):
        encode_request(1, "abc", ["x", ""], char_ids, max_length=10)
    with pytest.raises(ValueError, match="no continuations"):
        encode_request(0, "abc", [], char_ids, max_length=10)
    with pytest.raises(ValueError, match="empty context"):
        encode_request(0, "", ["x"], char_ids, max_length=10)


def test_empty_context_starts_from_the_start_token():
    r = encode_request(0, "", ["xy"], char_ids, max_length=10, start_ids=(1,))
    assert r.context == (1,)
    assert r.continuations == ((120, 121),)


def test_tree_mask_by_hand():
    # one left pad, a 2-token context (segment 0), a 2-token continuation input (segment 1),
    # a 1-token continuation input (segment 2)
    segments = torch.tensor([[-1, 0, 0, 1, 1, 2]])
    allowed = tree_attention_mask(segments, torch.float32)[0, 0] == 0
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],  # padding: itself only, so no softmax row is empty
            [0, 1, 0, 0, 0, 0],  # context token 0
            [0, 1, 1, 0, 0, 0],  # context token 1
            [0, 1, 1, 1, 0, 0],  # continuation 1, token 0: context + itself
            [0, 1, 1, 1, 1, 0],  # continuation 1, token 1: context + its own continuation
            [0, 1, 1, 0, 0, 1],  # continuation 2: context + itself, never continuation 1
        ],
        dtype=torch.bool,
    )
    assert torch.equal(allowed, expected)
    masked = tree_attention_mask(segments, torch.float32)[0, 0][~expected]
    assert torch.all(masked == torch.finfo(torch.float32).min)


def test_pack_batch_positions_and_scored_columns():
    r0 = EncodedRequest(0, (10, 11, 12), ((20, 21), (30,)), (2, 1))
    r1 = EncodedRequest(1, (40,), ((50,), (60, 61, 62)), (1, 3))
    p = pack_batch([r0, r1], pad_id=0)
    # r0 row: context 10 11 12, then continuation 0 without its last token: 20 (4 tokens)
    # r1 row: context 40, continuation 1 without its last token: 60 61 (3 tokens) -> 1 left pad
    assert p.input_ids.tolist() == [[10, 11, 12, 20], [0, 40, 60, 61]]
    assert p.position_ids.tolist() == [[0, 1, 2, 3], [0, 0, 1, 2]]  # continuations restart after the context
    assert p.segments.tolist() == [[0, 0, 0, 1], [-1, 0, 2, 2]]
    # keep = max scored span = max(1 + 1 + 0, 1 + 0 + 2) = 3 -> kept columns are row columns 1..3
    assert p.keep == 3
    # r0: 20 and 30 are predicted at its last context column 2 (kept col 1), 21 at column 3 (kept col 2)
    # r1: 50 and 60 at its context column 1 (kept col 0), 61 at column 2 (col 1), 62 at column 3 (col 2)
    assert p.rows.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert p.cols.tolist() == [1, 2, 1, 0, 0, 1, 2]
    assert p.targets.tolist() == [20, 21, 30, 50, 60, 61, 62]
    assert p.owners == [(0, 0), (0, 0), (0, 1), (1, 0), (1, 1), (1, 1), (1, 1)]
    assert p.n_real_tokens == 4 + 3


def test_left_pad():
    ids, mask, pos = left_pad([[5, 6], [7]], pad_id=0)
    assert ids.tolist() == [[5, 6], [0, 7]]
    assert mask.tolist() == [[1, 1], [0, 1]]
    assert pos.tolist() == [[0, 1], [0, 0]]
