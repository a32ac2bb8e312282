"""Fuzz: generated malformed mappings, records and files for the custom loader and the built-in
loaders. Each case loads or ends in a LoaderError / BenchmarkSpecError (shown to the user as an
error naming file, line and field), never another exception; nothing is written under --out
before the inputs are validated. A seeded generator (no extra dependency), bounded in size:
10-26 s for the whole file, measured on a 2-core machine shared by ~8 engineers (load average 16-18).
"""

from __future__ import annotations

import json
import random
import shutil
import traceback

import pytest

from jmedllm.benchmarks import BenchmarkSpecError, LoaderError, load_benchmark
from jmedllm.scoring import score_generation

USER_ERRORS = (LoaderError, BenchmarkSpecError)

JUNK = [None, True, False, 0, -3, 1.5, 1e308, "", " ", "²", "NA", "N/A", "-", [], {}, [None], ["x"], [[1]],
        {"a": 1}, "\x00", "a" * 3000, "ｃ", "z", "1,2", "c,a", "ce", "\ud800", "é", "３", "a　b", "|a|b|",
        "並べよ", "すべて選べ", "../../x", "/etc/passwd", "img.png", 10 ** 30, -0.0, "1.0", "0x10"]

GOOD_TEXT = "正しいのはどれか。\na　一\nb　二\nc　三\nd　四\ne　五"


def good_record(k: int, rng: random.Random) -> dict:
    record = {
        "id": f"120{rng.choice('AB')}{k + 1}",
        "q": rng.choice([GOOD_TEXT, "Which is right?", "値を求めよ。", "すべて選べ。\na．x\nb．y\nc．z",
                         "順に並べよ。\na．x\nb．y\nc．z", "| | x |\n|---|---|\n| a | 1 |\n| b | 2 |"]),
        "c": rng.choice([["x", "y", "z"], ["x", "y"], [], None]),
        "a": rng.choice(["a", "b", "ab", ["a", "c"], 2, "15.5", "NA", None, "c,a,b"]),
        "n": rng.choice([1, 2, "", None]),
        "g": rng.choice([{"id": "g1", "ctx": "症例"}, {"id": "g1"}, None]),
        "img": rng.choice([None, "img.png", ["img.png", "missing.png"]]),
        "pts": rng.choice([1, 3, "0", None]),
        "blk": rng.choice(["A", "B", "Z", None]),
        "num": rng.choice([1, 30, "x", None]),
        "k": rng.choice([None, "e", ["a"], "NA"]),
        "sel": rng.choice([None, "n", "all", "order"]),
    }
    return record


def coherent_record(k: int, base: dict, rng: random.Random) -> dict:
    """A record that loads under ``base`` (so that about half the cases reach scoring)."""
    numeric = base.get("answer_style") == "number"
    return {"id": f"120{rng.choice('AB')}{k + 1}", "q": rng.choice([GOOD_TEXT, "すべて選べ。\na．x\nb．y\nc．z"]),
            "c": None if numeric else ["x", "y", "z"], "a": "15.5" if numeric else ("1" if "index1" in str(base) else "a"),
            "n": 1, "g": {"id": "g1", "ctx": "症例"}, "img": "img.png", "pts": 1, "blk": "A", "num": k + 1,
            "k": None, "sel": "n"}


def mutate_record(record: dict, rng: random.Random) -> dict:
    for _ in range(rng.randint(0, 3)):
        key = rng.choice(list(record))
        action = rng.random()
        if action < 0.3:
            record.pop(key)
        elif action < 0.9:
            record[key] = rng.choice(JUNK)
        else:
            record[key] = {"nested": rng.choice(JUNK)}
    return record


MAPPING_BASES = [
    {"data": "d.jsonl", "id": "id", "question": "q", "choices": "c", "answer": "a"},
    {"data": "d.json", "id": "id", "question": "q", "choices": "c", "embedded_choices": True, "answer": "a",
     "group": "g.id", "group_context": "g.ctx", "images": "img", "n_select": "n", "selection": "sel"},
    {"data": "d.json", "question": "q", "embedded_choices": True, "answer": "a", "id": "id",
     "id_pattern": r"^\d+(?P<block>[A-Z])(?P<number>\d+)$",
     "exam_rules": {"exam": 120, "points": [{"blocks": ["B"], "numbers": "1-3", "points": 3}, {"points": 1}],
                    "kinki_field": "k", "kinki_max": 1,
                    "sections": [{"name": "h", "blocks": ["B"], "line_fraction": 0.8},
                                 {"name": "g", "blocks": ["A"], "line": 1}]}},
    {"data": "d.jsonl", "question": "q", "answer": "a", "answer_style": "number"},
    {"data": "d.csv", "question": "q", "choices": ["A", "B", "C"], "answer": "a", "answer_style": "index1"},
    {"data": "d.json", "id": "id", "question": "q", "choices": "c", "strip_choice_labels": True,
     "answers_from": {"data": "key.csv", "id": "id", "answer": "a"}},
    {"data": "d.jsonl", "question": "q", "choices": "c", "embedded_choices": True, "answer": "a",
     "block": "blk", "number": "num", "answer_pattern": "答[:：](?P<answer>.+)",
     "exam_rules": {"exam": "x", "points_field": "pts", "sections": [{"name": "all", "line": 1}]}},
]


def mutate_mapping(mapping: dict, rng: random.Random) -> dict:
    if rng.random() < 0.25:
        key = rng.choice(list(mapping) + ["bogus", "answer_separator", "format", "records", "missing_answer",
                                          "on_missing_answer", "header", "delimiter", "meta", "exam_rules"])
        mapping[key] = rng.choice(JUNK + [["x", None], {"exam": None}, "(?P<answer", "(?P<block>x"])
    if rng.random() < 0.1 and "exam_rules" in mapping and isinstance(mapping["exam_rules"], dict):
        rules = dict(mapping["exam_rules"])
        rules[rng.choice(["sections", "points", "kinki_max", "exam", "other"])] = rng.choice(JUNK)
        mapping["exam_rules"] = rules
    return mapping


def write_data(folder, name: str, records: list, rng: random.Random) -> None:
    path = folder / name
    if name.endswith(".csv"):
        lines = ["q,A,B,C,a"]
        for r in records:
            cells = [str(r.get(k, "")) for k in ("q", "blk", "num", "pts", "a")]
            lines.append(",".join(f'"{c}"' if rng.random() < 0.2 else c.replace(",", " ") for c in cells))
        text = "\n".join(lines) + "\n"
    elif name.endswith(".json"):
        text = json.dumps(records, ensure_ascii=False, indent=1)
    else:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    raw = text.encode("utf-8", "surrogatepass")
    corruption = rng.random()
    if corruption < 0.08:
        raw = raw[: rng.randint(0, len(raw))]  # truncated
    elif corruption < 0.12:
        raw = b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n")  # BOM + CRLF (must load)
    elif corruption < 0.15:
        raw = raw + b"\xff\xfe garbage"
    elif corruption < 0.18 and name.endswith(".csv"):
        raw = raw + b'"unclosed,1,2,3,a\n'
    elif corruption < 0.2 and name.endswith(".json"):
        raw = b'{"questions": ' + raw + b"}"
    path.write_bytes(raw)
    (folder / "img.png").write_bytes(b"\x89PNG")
    keys = ["id,a"] + [f"{r.get('id', '')},{str(r.get('a', '')).replace(',', ' ')}" for r in records]
    if rng.random() < 0.2:
        keys.append(rng.choice(["1,a,b", '"x', "120A1,a", ",", "²,²"]))
    (folder / "key.csv").write_text("\n".join(keys) + "\n", encoding="utf-8", errors="surrogatepass")


def exercise(bench) -> None:
    """What a run does with loaded items: score an output (never a crash)."""
    for q in bench.questions[:5]:
        for output in ("答え：a", "c, a", "15.5", ""):
            score_generation(q, output)


def test_custom_mappings_and_records_fuzz(tmp_path):
    import yaml

    rng = random.Random(20261129)
    failures: list[str] = []
    loaded = refused = 0
    for case in range(300):
        folder = tmp_path / f"case{case}"
        folder.mkdir()
        base = rng.choice(MAPPING_BASES)
        mapping = mutate_mapping(json.loads(json.dumps(base)), rng)
        if rng.random() < 0.5:
            records = [coherent_record(k, base, rng) for k in range(rng.randint(1, 6))]
            if rng.random() < 0.5:
                mutate_record(rng.choice(records), rng)
        else:
            records = [mutate_record(good_record(k, rng), rng) for k in range(rng.randint(0, 6))]
        write_data(folder, base["data"], records, rng)
        (folder / "m.yaml").write_text(yaml.safe_dump(mapping, allow_unicode=True), encoding="utf-8")
        try:
            bench = load_benchmark(f"custom:{folder / 'm.yaml'}")
        except USER_ERRORS as exc:
            refused += 1
            assert str(exc).strip()
            continue
        except Exception:  # noqa: BLE001 - the point of the test
            failures.append(f"case {case}: {json.dumps(mapping, ensure_ascii=False)[:600]}\n{traceback.format_exc()}")
            continue
        loaded += 1
        try:
            exercise(bench)
        except Exception:  # noqa: BLE001
            failures.append(f"case {case} (scoring): {traceback.format_exc()}")
    assert not failures, f"{len(failures)} tracebacks; first:\n{failures[0][-3000:]}"
    assert loaded > 30 and refused > 30  # the generator reaches both outcomes


BUILTIN = [
    ("igakuqa:2022:A", "igakuqa/data/2022/116-A.jsonl", "jsonl"),
    ("igakuqa:2022:A", "igakuqa/data/2022/116-A_metadata.jsonl", "jsonl"),
    ("igakuqa-en:2022:A", "igakuqa/data/2022/116-A_translate.jsonl", "jsonl"),
    ("medqa", "medqa/rawdata/medqa/data_clean/questions/US/4_options/phrases_no_exclude_test.jsonl", "jsonl"),
    ("mmlu-med:anatomy", "mmlu/rawdata/mmlu/data/test/anatomy_test.csv", "csv"),
    ("yakugakuqa:2024", None, "jsonl"),
]


def _mutate_line(line: str, rng: random.Random, kind: str) -> str:
    if kind == "csv":
        choice = rng.random()
        if choice < 0.3:
            return line.rsplit(",", 1)[0]
        if choice < 0.5:
            return line + ',"x'
        return line.replace(",", rng.choice([",,", ";", ",²,"]), 1)
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return line[:-3]
    if isinstance(record, dict) and record:
        return json.dumps(mutate_record(record, rng), ensure_ascii=False)
    return "{"


def test_builtin_loaders_fuzz(tmp_path, data_root):
    rng = random.Random(7)
    failures: list[str] = []
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(60):
        spec, rel, kind = BUILTIN[case % len(BUILTIN)]
        root = tmp_path / f"root{case}"
        if rel is None:  # a whole year folder of YakugakuQA, one file mutated
            src = data_root / "yakugakuqa" / "data" / "2024"
            shutil.copytree(src, root / "yakugakuqa" / "data" / "2024")
            target = sorted((root / "yakugakuqa" / "data" / "2024").glob("*.jsonl"))[rng.randrange(3)]
        else:
            src_folder = (data_root / rel).parent
            dst_folder = root / rel
            dst_folder.parent.mkdir(parents=True)
            for f in src_folder.iterdir():
                if f.is_file() and (kind == "csv" or f.name.startswith(rel.split("/")[-1][:5])
                                    or src_folder.name == "4_options"):
                    if f.name.endswith(("_test.csv", ".jsonl")) and f.stat().st_size < 3_000_000:
                        (dst_folder.parent / f.name).write_bytes(f.read_bytes())
            target = dst_folder
        lines = target.read_text(encoding="utf-8-sig").splitlines()[:40]
        for _ in range(rng.randint(1, 4)):
            k = rng.randrange(len(lines))
            lines[k] = _mutate_line(lines[k], rng, kind)
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            bench = load_benchmark(spec, root)
            exercise(bench)
            outcomes["loaded"] += 1
        except USER_ERRORS:
            outcomes["refused"] += 1
        except Exception:  # noqa: BLE001
            failures.append(f"case {case} {spec} {rel}:\n{traceback.format_exc()}")
    assert not failures, f"{len(failures)} tracebacks; first:\n{failures[0][-3000:]}"
    assert outcomes["loaded"] > 5 and outcomes["refused"] > 5, outcomes


def test_nothing_is_written_under_out_before_validation(tmp_path):
    from jmedllm.evaluate import EvalConfig, EvalError, run_eval

    class Engine:
        kind = "scripted"

        def generate(self, prompts, params):  # pragma: no cover - never reached
            raise AssertionError("the engine ran before the inputs were validated")

        def describe(self):
            return {"kind": "scripted"}

    (tmp_path / "d.jsonl").write_text('{"q": "Q", "c": ["x", "y"], "a": "a"}\n{"q": "R", "c": ["x"], "a": "a"}\n',
                                      encoding="utf-8")
    (tmp_path / "m.yaml").write_text("data: d.jsonl\nquestion: q\nchoices: c\nanswer: a\n", encoding="utf-8")
    out = tmp_path / "run"
    with pytest.raises((LoaderError, EvalError)):
        run_eval(EvalConfig(model="scripted", benchmarks=[f"custom:{tmp_path / 'm.yaml'}"], out=str(out)),
                 engine=Engine())
    assert not out.exists()
