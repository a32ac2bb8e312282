"""A recent-exam-shaped JSON array loaded through a mapping alone, and judged by declared rules.

The file is built here, in the shape of a real exam export (made-up questions): one JSON
array; choices embedded in the question text (some as markdown table rows, some labelled
ア–オ) or in a list field; numeric items in the same file; image paths; serial groups with
the shared case nested in an object; answers missing or "NA"; a select-all and an ordering
question; blocks and numbers in the id; points by block and number range; a forbidden-choice
field. An eval over it with a scripted engine gives points and pass / fail computed by hand.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from jmedllm.benchmarks import load_benchmark
from jmedllm.engines.base import Capabilities
from jmedllm.engines.messages import text_only
from jmedllm.evaluate import EvalConfig, run_eval
from jmedllm.schema import Completion

RECORDS = [
    {"id": "120A1", "question": "高カリウム血症の心電図所見はどれか。\na　テント状T波\nb　U波\nc　デルタ波\nd　J波\ne　QT延長",
     "answer": "a", "kinki": None},
    {"id": "120A2", "question": "組合せで正しいのはどれか。\n\n| | 薬剤 | 副作用 |\n|---|---|---|\n"
                                "| a | フロセミド | 高カリウム血症 |\n| b | スピロノラクトン | 女性化乳房 |\n"
                                "| c | アミオダロン | 低血糖 |\n| d | メトホルミン | 徐脈 |\n| e | ワルファリン | 骨折 |",
     "answer": "b"},
    {"id": "120A3", "question": "体重60kg、身長2.0mの患者のBMIを求めよ。小数第1位まで答えよ。", "answer": "15.0"},
    {"id": "120A4", "question": "ループ利尿薬の副作用をすべて選べ。\na．低カリウム血症\nb．高カリウム血症\nc．高尿酸血症\nd．低血糖\ne．徐脈",
     "answer": ["a", "c"]},
    {"id": "120A5", "question": "心肺蘇生の手順を正しい順に並べよ。\na．胸骨圧迫\nb．AED装着\nc．反応の確認",
     "answer": "c,a,b"},
    {"id": "120A6", "question": "公表された正答のない問題。\na．あ\nb．い\nc．う\nd．え\ne．お", "answer": "NA"},
    {"id": "120A7", "question": "画像（別冊No. 1）の所見で考えられるのはどれか。\na．肺炎\nb．気胸\nc．胸水\nd．無気肺\ne．正常",
     "answer": "b", "images": ["img/120A7.png"], "kinki": "e"},
    {"id": "120B1", "question": "成人の安静時呼吸数の正常範囲に最も近いのはどれか。\na）4/分\nb）16/分\nc）40/分\nd）60/分\ne）80/分",
     "answer": "b"},
    {"id": "120B2", "question": "誤っている記述の組合せはどれか。\nア　前者\nイ　後者\n\na　ア\nb　イ\nc　アとイ\nd　なし\ne　不明",
     "answer": "b"},
    {"id": "120B3", "question": "インスリンを分泌するのはどれか。", "options": ["α細胞", "β細胞", "δ細胞", "PP細胞", "腺房細胞"],
     "answer": "b"},
    {"id": "120B4", "group": {"id": "case1", "context": "72歳の男性。胸痛を主訴に来院した。"},
     "question": "まず行うべき検査はどれか。\na　運動負荷心電図\nb　12誘導心電図\nc　冠動脈造影\nd　MRI\ne　骨シンチグラフィ",
     "answer": "b", "kinki": "a"},
    {"id": "120B5", "group": {"id": "case1"},
     "question": "この患者に投与すべきでないのはどれか。\na　アスピリン\nb　ニトログリセリン\nc　ヘパリン\nd　モルヒネ\ne　ホスホジエステラーゼ5阻害薬の併用下でのニトログリセリン",
     "answer": "e"},
    {"id": "120B6", "question": "正答が公表されていない問題。\na．あ\nb．い\nc．う\nd．え\ne．お", "answer": None},
]

MAPPING = """\
    name: exam120
    description: a made-up exam in the shape of a recent one
    data: exam120.json
    id: id
    question: question
    choices: options
    embedded_choices: true
    answer: answer
    images: images
    group: group.id
    group_context: group.context
    id_pattern: '^\\d+(?P<block>[A-Z])(?P<number>\\d+)$'
    answer_pattern: '【解答】\\s*(?P<answer>[a-e](?:\\s*,\\s*[a-e])*)'
    exam_rules: rules.yaml
"""

RULES = """\
    exam: 120
    source: made up for this test
    points:
      - {blocks: [B], numbers: 4-5, points: 3}
      - {points: 1}
    kinki_field: kinki
    kinki_max: 1
    sections:
      - {name: hisshu, label: 必修, blocks: [B], line_fraction: 0.8}
      - {name: ippan, label: 一般, blocks: [A], line: 4}
"""


def build(tmp_path):
    (tmp_path / "exam120.json").write_text(json.dumps(RECORDS, ensure_ascii=False, indent=1), encoding="utf-8")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "120A7.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "exam120.yaml").write_text(textwrap.dedent(MAPPING), encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(RULES), encoding="utf-8")
    return f"custom:{tmp_path / 'exam120.yaml'}"


def test_the_exam_loads_through_the_mapping_alone(tmp_path, monkeypatch):
    monkeypatch.delenv("JMEDLLM_DATA_ROOT", raising=False)  # a custom: spec needs no data root
    bench = load_benchmark(build(tmp_path))
    q = {x.id: x for x in bench}
    assert list(q) == ["120A1", "120A2", "120A3", "120A4", "120A5", "120A7", "120B1", "120B2", "120B3", "120B4", "120B5"]
    # the records without a key are excluded, counted and listed, never a crash
    assert len(bench.excluded) == 2 and bench.excluded[0].startswith("120A6 (exam120.json:")
    assert "no official answer key" in bench.excluded[1] and bench.excluded[1].startswith("120B6")
    # embedded choices: split off, the question shown without them
    assert q["120A1"].choices == ("テント状T波", "U波", "デルタ波", "J波", "QT延長")
    assert q["120A1"].text == "高カリウム血症の心電図所見はどれか。" and q["120A1"].answer == {0}
    # markdown table rows: the cells after the label; the header row stays with the question
    assert q["120A2"].choices[1] == "スピロノラクトン | 女性化乳房" and "| 薬剤 | 副作用 |" in q["120A2"].text
    # ア/イ statements stay in the stem; the a-e run at the end are the choices
    assert q["120B2"].choices == ("ア", "イ", "アとイ", "なし", "不明") and "ア　前者" in q["120B2"].text
    assert q["120B3"].choices[1] == "β細胞"  # a list field where the record has one
    # per-record answer type: a numeric item in the same file
    assert q["120A3"].is_numeric and q["120A3"].numeric_answer == "15.0"
    # select-all and ordering
    assert (q["120A4"].selection, q["120A4"].n_select, q["120A4"].answer) == ("all", 0, {0, 2})
    assert (q["120A5"].selection, q["120A5"].answer_order) == ("order", (2, 0, 1))
    # images: resolved, confined, not text-only
    assert q["120A7"].images == (str(tmp_path / "img" / "120A7.png"),) and q["120A7"].meta["text_only"] is False
    assert q["120A1"].meta["text_only"] is True
    # serial group: the shared case before each question of the group, meta["group"]
    assert q["120B4"].context == q["120B5"].context == "72歳の男性。胸痛を主訴に来院した。"
    assert q["120B5"].meta["group"] == "case1"
    # exam facts: block and number from the id, section, points by rule, kinki
    assert [q[i].meta["points"] for i in ("120B1", "120B4", "120B5", "120A1")] == [1, 3, 3, 1]
    assert q["120B4"].meta["section"] == "hisshu" and q["120B4"].meta["kinki"] == (0,)
    assert q["120A1"].meta["kinki"] == () and q["120A7"].meta["kinki"] == (4,)
    rules = q["120A1"].meta["exam_rules"]
    assert [(s.name, s.maximum) for s in rules.sections] == [("hisshu", 9), ("ippan", 6)]  # from the items
    assert q["120A1"].meta["answer_pattern"].startswith("【解答】")


class ExamEngine:
    """Answers each question by a phrase of its text (a scripted engine, for runner tests). It
    declares image support, so the image item reaches it (as chat messages with an image part)."""

    kind = "scripted"
    supports = Capabilities(loglik=False, letter="", images=True)

    def __init__(self, answers):
        self.answers = answers

    def generate(self, prompts, params):
        out = []
        for p in prompts:
            if not isinstance(p, str):  # chat messages carrying the image item's picture
                assert any(part.get("type") == "image" for m in p for part in m["content"] if isinstance(part, dict))
                p = text_only([{"role": m["role"], "content": [x for x in m["content"] if x.get("type") == "text"]}
                               if isinstance(m["content"], list) else m for m in p])
                p = " ".join(m["content"] for m in p)
            hits = [a for key, a in self.answers.items() if key in p]
            assert len(hits) == 1, p
            out.append(Completion(hits[0], 10, 3))
        return out

    def describe(self):
        return {"kind": self.kind, "answers": sorted(self.answers.items())}


KEYS = {"120A1": "高カリウム血症の心電図", "120A2": "組合せで正しい", "120A3": "BMIを求めよ", "120A4": "ループ利尿薬",
        "120A5": "心肺蘇生の手順", "120A7": "別冊No. 1", "120B1": "安静時呼吸数", "120B2": "誤っている記述の組合せ",
        "120B3": "インスリンを分泌", "120B4": "まず行うべき検査", "120B5": "投与すべきでない"}


def run(tmp_path, spec, answers, name):
    engine = ExamEngine({KEYS[k]: v for k, v in answers.items()})
    out = run_eval(EvalConfig(model="scripted", benchmarks=[spec], out=str(tmp_path / name), bootstrap=50),
                   engine=engine)
    return json.loads((out / "summary.json").read_text()), (out / "summary.md").read_text()


ALL_RIGHT = {"120A1": "【解答】a", "120A2": "【解答】b", "120A3": "答え：15.0", "120A4": "【解答】a, c",
             "120A5": "答え：c, a, b", "120A7": "【解答】b", "120B1": "【解答】b", "120B2": "【解答】b",
             "120B3": "【解答】b", "120B4": "【解答】b", "120B5": "【解答】e"}


def test_eval_reports_points_and_pass_from_declared_rules(tmp_path):
    spec = build(tmp_path)
    summary, md = run(tmp_path, spec, ALL_RIGHT, "right")
    (exam,) = summary["exams"]
    assert (exam["exam"], exam["passed"], exam["complete"], exam["kinki_count"]) == (120, True, True, 0)
    assert (exam["hisshu"]["points"], exam["hisshu"]["official_max"], exam["hisshu"]["line"]) == (9, 9, 8)
    assert (exam["ippan"]["points"], exam["ippan"]["official_max"], exam["ippan"]["line"]) == (6, 6, 4)
    assert summary["run"]["excluded"]["count"] == 2
    prompts = {json.loads(x)["id"]: json.loads(x)["prompt"]
               for x in (tmp_path / "right" / "items.jsonl").read_text().splitlines()}
    assert "当てはまる選択肢をすべて選び" in prompts["120A4"] and "正しい順に並べ" in prompts["120A5"]
    assert "文脈：72歳の男性。" in prompts["120B5"]  # the group's case, shown before the later question too
    assert "2 record(s) excluded by the loader (no official answer key)" in md

    # Hand-computed: A1 right (1), A2 wrong (0), A3 wrong number (0), A4 one of two (0; set F1 2/3),
    # A5 the right choices in the wrong order (0), A7 the forbidden e (0, kinki 1)  -> 一般 1 / 6, line 4;
    # B1 1, B2 1, B3 wrong 0, B4 the forbidden a (0, kinki 2), B5 3                 -> 必修 5 / 9, line 8.
    mixed = ALL_RIGHT | {"120A2": "【解答】c", "120A3": "答え：15.5", "120A4": "【解答】a", "120A5": "答え：a, b, c",
                         "120A7": "【解答】e", "120B3": "【解答】c", "120B4": "【解答】a"}
    summary, md = run(tmp_path, spec, mixed, "mixed")
    (exam,) = summary["exams"]
    assert (exam["hisshu"]["points"], exam["hisshu"]["margin"]) == (5, -3)
    assert (exam["ippan"]["points"], exam["ippan"]["margin"]) == (1, -3)
    assert (exam["kinki_count"], exam["kinki_max"], exam["kinki_margin"], exam["passed"]) == (2, 1, -1, False)
    assert summary["overall"]["metrics"]["accuracy"]["mean"] == pytest.approx(4 / 11)
    items = {json.loads(x)["id"]: json.loads(x)["verdict"]
             for x in (tmp_path / "mixed" / "items.jsonl").read_text().splitlines()}
    assert items["120A4"]["f1"] == pytest.approx(2 / 3) and items["120A4"]["correct"] is False
    assert items["120A5"]["predicted_order"] == [0, 1, 2] and items["120A5"]["f1"] == 1.0
    assert "| 120 | exam120 | ja | 11 | 必修 | 5 [" in md and "FAIL" in md


def test_the_documented_exam_example_loads(tmp_path):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "custom-benchmarks.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    rules = next(b for b in blocks if b.startswith("exam: 120"))
    mapping = next(b for b in blocks if b.startswith("name: exam120"))
    build(tmp_path)
    (tmp_path / "rules.yaml").write_text(rules, encoding="utf-8")
    (tmp_path / "doc.yaml").write_text(mapping, encoding="utf-8")
    bench = load_benchmark(f"custom:{tmp_path / 'doc.yaml'}")
    q = {x.id: x for x in bench}
    # 120B4 is block B number 4: 1 point by the documented rules (B 1-25), section 必修; A items 一般+臨床
    assert (q["120B4"].meta["points"], q["120B4"].meta["section"], q["120A1"].meta["section"]) == (
        1, "hisshu", "ippan_rinsho")
    sections = q["120A1"].meta["exam_rules"].sections
    assert [(s.name, s.maximum, s.pass_line(s.maximum)) for s in sections] == [("hisshu", 5, 4), ("ippan_rinsho", 6, 221)]


def test_data_check_on_the_exam(tmp_path, monkeypatch, capsys):
    from jmedllm.cli import main

    monkeypatch.delenv("JMEDLLM_DATA_ROOT", raising=False)
    spec = build(tmp_path)
    assert main(["data", "check", "-b", spec]) == 0
    out = capsys.readouterr().out
    assert "questions: 11 (ja)" in out and "numeric-answer items: 1" in out
    assert "exam 120 points per section: hisshu: 9, ippan: 6" in out
    assert "2 record(s) excluded: no official answer key" in out and "120A6 (exam120.json:" in out
    assert "more gold keys" not in out  # a select-all item asks for no fixed number
    assert "ordering): all: 1, n: 9, order: 1" in out


@pytest.mark.parametrize("mode", ["generate", "loglik"])
def test_the_exam_end_to_end_on_a_tiny_real_model(mode, tiny_model_dir, tmp_path, monkeypatch, capsys):
    """`jmedllm eval` over the exam file with a real (tiny, random) model, no data root: every item
    scored or listed as not applicable, points and a verdict from the declared rules."""
    from jmedllm.cli import main

    monkeypatch.delenv("JMEDLLM_DATA_ROOT", raising=False)
    spec = build(tmp_path)
    out = tmp_path / mode
    assert main(["eval", "--model", str(tiny_model_dir), "--benchmark", spec, "--out", str(out), "--mode", mode,
                 "--max-new-tokens", "4", "--bootstrap", "20"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    (exam,) = summary["exams"]
    assert exam["exam"] == 120 and isinstance(exam["passed"], bool)
    assert (exam["hisshu"]["official_max"], exam["ippan"]["official_max"]) == (9, 6)
    na = summary["run"]["not_applicable"]["count"]
    skipped = summary["run"]["skipped"]["image"]
    # the tiny model is text-only: the image item is skipped and counted (never silently dropped)
    assert skipped["count"] == 1 and skipped["items"][0].endswith("::120A7")
    assert summary["run"]["items_done"] + na + 1 == 11 and na == (3 if mode == "loglik" else 0)
    assert summary["run"]["excluded"]["count"] == 2
    assert "exam120" in capsys.readouterr().out
