"""Out-of-memory back-off: the failing batch is retried at half size, finished batches are kept."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from jmedllm.engines.batching import AdaptiveBatcher, is_oom_error, rows_within_limits  # noqa: E402


def run(batcher, items, fails):
    calls, stored = [], []

    def process(batch):
        calls.append(list(batch))
        if fails(batch):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [x * 10 for x in batch]

    batcher.run(items, process, lambda b, r: stored.extend(zip(b, r)))
    return calls, stored


def test_auto_halves_until_it_fits():
    b = AdaptiveBatcher("auto", start=8)
    calls, stored = run(b, list(range(10)), fails=lambda batch: len(batch) > 3)
    # 8 fails -> 4 fails -> 2 fits, then 2 at a time: sizes 8, 4, 2, 2, 2, 2, 2
    assert [len(c) for c in calls] == [8, 4, 2, 2, 2, 2, 2]
    assert stored == [(x, x * 10) for x in range(10)]
    assert b.size == 2  # remembered for the next call


def test_finished_batches_are_not_recomputed_after_a_later_oom():
    b = AdaptiveBatcher("auto", start=4)
    calls, stored = run(b, list(range(10)), fails=lambda batch: 6 in batch and len(batch) > 1)
    # [0-3] ok; [4-7] fails -> size 2; [4,5] ok; [6,7] fails -> size 1; then 6, 7, 8, 9
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [4, 5], [6, 7], [6], [7], [8], [9]]
    assert stored == [(x, x * 10) for x in range(10)]  # each item stored exactly once, in order


def test_fixed_size_reraises_with_advice_and_other_errors_pass_through():
    with pytest.raises(torch.OutOfMemoryError, match="out of memory at batch_size=4"):
        run(AdaptiveBatcher(4), list(range(8)), fails=lambda batch: True)
    with pytest.raises(torch.OutOfMemoryError, match="even at batch size 1"):
        run(AdaptiveBatcher("auto", start=2), [1, 2], fails=lambda batch: True)

    def broken(batch):
        raise ValueError("not memory")

    with pytest.raises(ValueError, match="not memory"):
        AdaptiveBatcher("auto").run([1], broken, lambda b, r: None)


def test_is_oom_error():
    assert is_oom_error(torch.OutOfMemoryError("x"))
    assert is_oom_error(RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory: you tried"))
    assert is_oom_error(MemoryError())
    assert not is_oom_error(RuntimeError("size mismatch"))


def test_bad_batch_size():
    for bad in (0, -1, "big", True, 2.5):
        with pytest.raises(ValueError, match="batch_size"):
            AdaptiveBatcher(bad)


def test_rows_within_limits():
    lengths = [10, 10, 9, 5]
    # 2 rows: 20 padded, 20 real, no padding; 3 rows: 30 padded, 29 real, 1 <= 0.1 * 30;
    # 4 rows: 40 padded, 34 real, 6 > 0.1 * 40 = 4 -> stop at 3
    assert rows_within_limits(lengths, max_tokens=100, max_padding_fraction=0.1) == 3
    # 3 rows would be 30 padded tokens > 25
    assert rows_within_limits(lengths, max_tokens=25, max_padding_fraction=0.1) == 2
    assert rows_within_limits(lengths, max_tokens=100, max_padding_fraction=None) == 4
    assert rows_within_limits([500, 10], max_tokens=100, max_padding_fraction=None) == 1  # always one row


def test_generation_plan_hand_computed():
    from jmedllm.engines.batching import DecodeCost, plan_generation_batches

    # no fixed costs: padding is pure loss, every distinct length gets its own batch
    free = DecodeCost(forward=0, step=0, step_row=1, step_row_context=0)
    assert plan_generation_batches([10, 10, 5], 4, max_rows=8, max_tokens=1000, cost=free) == [2, 1, 1]
    # a fixed step cost of 10 over 4 steps (40) outweighs 5 padded positions: one batch
    stepped = DecodeCost(forward=0, step=10, step_row=1, step_row_context=0)
    assert plan_generation_batches([10, 10, 5], 4, max_rows=8, max_tokens=1000, cost=stepped) == [3, 2, 1]
    # ...but not 50 padded positions: [100] + [50, 50]? cost: one batch 0+3*100+4*(10+3)=352;
    # split 100 | 50,50: (100+4*11) + (100+4*12) = 292
    assert plan_generation_batches([100, 50, 50], 4, max_rows=8, max_tokens=1000, cost=stepped)[0] == 1
    # the row and token limits hold: at most 2 rows, and 2 x (10 + 4) <= 28 tokens
    assert plan_generation_batches([10] * 5, 4, max_rows=2, max_tokens=1000, cost=stepped) == [2, 2, 2, 2, 1]
    assert plan_generation_batches([10] * 3, 4, max_rows=8, max_tokens=28, cost=stepped) == [2, 2, 1]
    assert plan_generation_batches([500], 4, max_rows=8, max_tokens=28, cost=stepped) == [1]  # always a row
    assert plan_generation_batches([], 4, max_rows=8, max_tokens=28) == []


def test_generation_plan_context_cost():
    from jmedllm.engines.batching import DecodeCost, plan_generation_batches

    # a long cached context makes each row's decode steps dearer, but never changes the padding
    # trade-off of rows of equal length: equal rows always share a batch
    cost = DecodeCost()
    assert plan_generation_batches([30] * 6, 16, context=700, max_rows=64, max_tokens=16384, cost=cost) == [6, 5, 4, 3, 2, 1]


def test_scoring_plan_hand_computed():
    from jmedllm.engines.batching import DecodeCost, plan_scoring_batches

    # no fixed cost: padding is pure loss ([10, 10] together, 5 alone; 10 | 10,5 ties and the larger batch wins)
    free = DecodeCost(forward=0, attention_pair=0)
    assert plan_scoring_batches([10, 10, 5], [0, 0, 0], max_rows=8, max_tokens=1000, cost=free) == [2, 1, 1]
    # a forward costs 10 tokens: one forward of 3 x 10 (40) beats 10 + 10 | 10 + 5 (45) and three forwards (55)
    fixed = DecodeCost(forward=10, attention_pair=0)
    assert plan_scoring_batches([10, 10, 5], [0, 0, 0], max_rows=8, max_tokens=1000, cost=fixed) == [3, 2, 1]
    # attention over a row's keys: a 100-token cached prefix on one row makes every row of its
    # batch attend to 110 keys; alone: 10 + 10 x (1 + 0.02 x 110) = 42 (+ 22 for the other row),
    # together: 10 + 20 x 3.2 = 74, so they part; without the prefix they share a forward (34 < 44)
    attn = DecodeCost(forward=10, attention_pair=0.02)
    assert plan_scoring_batches([10, 10], [100, 0], max_rows=8, max_tokens=1000, cost=attn) == [1, 1]
    assert plan_scoring_batches([10, 10], [0, 0], max_rows=8, max_tokens=1000, cost=attn) == [2, 1]
    # the row and token limits hold, and there is always a row
    assert plan_scoring_batches([10] * 3, [0] * 3, max_rows=8, max_tokens=20, cost=fixed) == [2, 2, 1]
    assert plan_scoring_batches([10] * 3, [0] * 3, max_rows=1, max_tokens=1000, cost=fixed) == [1, 1, 1]
    assert plan_scoring_batches([500], [0], max_rows=8, max_tokens=20, cost=fixed) == [1]
    assert plan_scoring_batches([], [], max_rows=8, max_tokens=20) == []
    with pytest.raises(ValueError, match="2 widths but 1 prefix"):
        plan_scoring_batches([1, 1], [0], max_rows=8, max_tokens=20)


def test_attention_pair_cost_of_a_model():
    from jmedllm.engines.batching import attention_pair_cost

    # the bench Llama: 8 layers, hidden 768, 68.9 M parameters
    assert attention_pair_cost(8, 768, 68_900_000) == pytest.approx(4 * 8 * 768 / 68.9e6)
    assert attention_pair_cost(28, 3584, 7_600_000_000) < 1e-4  # a 7B model: attention is cheap per pair


def test_cheapest_split_hand_computed():
    """The dynamic programme the three planners share: per start, the first batch of the cheapest split."""
    from jmedllm.engines.batching import cheapest_split

    # batch cost: 3 + 1 per item; single items cost 4 each, pairs 5, triples 6
    assert cheapest_split(3, lambda i: (3 + k for k in range(1, 4 - i))) == [3, 2, 1]
    # at most two items per batch (the generator stops early): 4 items as 2 + 2
    assert cheapest_split(4, lambda i: (3 + k for k in range(1, min(2, 4 - i) + 1))) == [2, 2, 2, 1]
    # a batch that costs more than its parts split apart: singles (ties go to the larger batch)
    assert cheapest_split(2, lambda i: iter([1.0, 2.0] if i == 0 else [1.0])) == [2, 1]
    assert cheapest_split(2, lambda i: iter([1.0, 5.0] if i == 0 else [1.0])) == [1, 1]
    assert cheapest_split(0, lambda i: iter([])) == []
    with pytest.raises(ValueError, match="no batch allowed at item 0"):
        cheapest_split(1, lambda i: iter([]))
