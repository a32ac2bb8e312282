"""select_shots: seeded, deterministic, never the evaluated item."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jmedllm.prompts import select_shots
from jmedllm.schema import Question


def q(qid: str, text: str | None = None, n_select: int = 1, n_choices: int = 5) -> Question:
    return Question(
        id=qid,
        benchmark="b",
        text=text if text is not None else f"問題 {qid} はどれか。",
        choices=tuple(f"c{i}" for i in range(n_choices)),
        answer={0},
        n_select=n_select,
        language="ja",
    )


POOL = [q(f"p{i}") for i in range(30)]


def test_never_the_evaluated_item_by_id():
    item = POOL[3]
    for seed in range(20):
        shots = select_shots(item, POOL, k=5, seed=seed)
        assert len(shots) == 5
        assert item.id not in {s.id for s in shots}


def test_never_the_evaluated_item_by_text_under_another_id():
    item = q("target", text="心房細動の治療はどれか。")
    # the same question stored again under another id, with full-width / spacing differences
    twin = q("twin", text="心房細動の 治療は どれか。")
    twin_fw = q("twin-en", text="ＡＢＣ check")
    item_fw = q("target2", text="ABC  CHECK")
    pool = [twin, q("o1"), q("o2"), q("o3")]
    for seed in range(20):
        assert "twin" not in {s.id for s in select_shots(item, pool, k=3, seed=seed)}
        assert "twin-en" not in {s.id for s in select_shots(item_fw, [twin_fw, *pool[1:]], k=3, seed=seed)}


def test_pool_too_small_after_exclusion():
    item = POOL[0]
    with pytest.raises(ValueError, match="asked for 3 few-shot exemplars but the pool of 3 items has only 2"):
        select_shots(item, POOL[:3], k=3, seed=0)


def test_duplicates_in_pool_are_not_repeated():
    pool = [q("a", text="同じ"), q("b", text="同じ"), q("c")]
    shots = select_shots(q("x"), pool, k=2, seed=1)
    assert {s.id for s in shots} in ({"a", "c"}, {"b", "c"})


def test_prefers_same_n_select_then_same_number_of_choices():
    item = q("x", n_select=2, n_choices=5)
    pool = [q("s1", n_select=1), q("s2", n_select=1), q("two-4", n_select=2, n_choices=4),
            q("two-5a", n_select=2), q("two-5b", n_select=2), q("one-4", n_select=1, n_choices=4)]
    for seed in range(10):
        shots = select_shots(item, pool, k=3, seed=seed)
        # both select-2 five-choice items first, then the select-2 four-choice item
        assert {s.id for s in shots[:2]} == {"two-5a", "two-5b"}
        assert shots[2].id == "two-4"


def test_deterministic_and_independent_of_pool_order():
    item = POOL[0]
    a = [s.id for s in select_shots(item, POOL, k=4, seed=7)]
    b = [s.id for s in select_shots(item, list(reversed(POOL)), k=4, seed=7)]
    assert a == b
    # other seeds / other items get other shots (not a fixed prefix of the pool)
    picks = {tuple(s.id for s in select_shots(item, POOL, k=4, seed=s)) for s in range(10)}
    assert len(picks) > 1
    assert [s.id for s in select_shots(POOL[1], POOL, k=4, seed=7)] != a


def test_same_choice_in_another_process_with_another_hash_seed():
    item = POOL[0]
    here = [s.id for s in select_shots(item, POOL, k=4, seed=11)]
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])\n"
        "from test_shots import POOL\n"
        "from jmedllm.prompts import select_shots\n"
        "print(json.dumps([s.id for s in select_shots(POOL[0], POOL, k=4, seed=11)]))\n"
    )
    src = Path(__file__).resolve().parents[2] / "src"
    for hash_seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code, str(src), str(Path(__file__).parent)],
                             env=env, capture_output=True, text=True, check=True)
        assert json.loads(out.stdout) == here


def test_k_zero():
    assert select_shots(POOL[0], [], k=0, seed=0) == []
