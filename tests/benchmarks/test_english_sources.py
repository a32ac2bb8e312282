"""MedQA, MedMCQA, MMLU medical, JMMLU and PubMedQA: counts, answer mapping, quirks, errors."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from jmedllm.benchmarks import LoaderError, load_benchmark
from jmedllm.benchmarks import medmcqa, medqa, pubmedqa


def test_medqa(bench):
    b = bench("medqa")
    assert len(b) == 1273 and all(len(q.choices) == 4 and len(q.answer) == 1 and q.n_select == 1 for q in b)
    q = b.questions[0]
    assert q.id == "test-0000" and q.answer_texts == ("Tell the attending that he cannot fail to disclose this mistake",)
    assert Counter(q.meta["step"] for q in b) == {"step1": 679, "step2&3": 594}


def write_lines(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")


def medqa_row(**changes):
    row = {"question": "Q?", "answer": "two", "options": {"A": "one", "B": "two", "C": "three", "D": "four"},
           "answer_idx": "B", "meta_info": "step1"}
    row.update(changes)
    return row


def test_medqa_answer_text_must_match_answer_idx(tmp_path):
    write_lines(tmp_path / medqa.RELATIVE_PATH, [medqa_row(), medqa_row(answer_idx="C")])
    with pytest.raises(LoaderError, match=r"_test\.jsonl:2: field 'answer_idx': 'C' disagrees with 'answer'"):
        load_benchmark("medqa", tmp_path)
    write_lines(tmp_path / medqa.RELATIVE_PATH, [medqa_row(answer="five")])
    with pytest.raises(LoaderError, match="field 'answer': 'five' matches 0 options"):
        load_benchmark("medqa", tmp_path)


def test_medmcqa(bench):
    b = bench("medmcqa")
    assert len(b) == 4183 and all(len(q.choices) == 4 and len(q.answer) == 1 for q in b)
    # "multi" is a question style; every item, multi or not, has one correct option (cop).
    assert Counter(q.meta["choice_type"] for q in b) == {"single": 2816, "multi": 1367}
    assert Counter(min(q.answer) for q in b) == {0: 1348, 1: 1085, 2: 925, 3: 825}  # cop 1..4 -> 0..3
    assert all(q.n_select == 1 for q in b)  # incl. "You choose 2 ampules …", not a select-2 instruction
    assert sum(q.explanation is not None for q in b) == 2206
    q = b.questions[0]
    assert q.id == "45258d3d-b974-44dd-a161-c3fccbdadd88" and q.answer == {0} and q.meta["subject"] == "Physiology"


def test_medmcqa_bad_cop(tmp_path):
    row = {"id": "x", "question": "Q?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 5, "exp": None}
    write_lines(tmp_path / medmcqa.RELATIVE_PATH, [row])
    with pytest.raises(LoaderError, match=r"dev\.json:1: field 'cop': 5 is not a 1-based option number 1\.\.4"):
        load_benchmark("medmcqa", tmp_path)


def test_mmlu_med(bench):
    b = bench("mmlu-med")
    assert len(b) == 1089
    assert Counter(q.meta["subject"] for q in b) == {"anatomy": 135, "clinical_knowledge": 265, "college_biology": 144,
                                                      "college_medicine": 173, "medical_genetics": 100,
                                                      "professional_medicine": 272}
    q = {q.id: q for q in b}["anatomy-000"]
    assert q.answer == {0} and q.choices[0] == "paralysis of the facial muscles."
    # A record spanning several physical lines keeps the line where it starts: record 3 of
    # college_medicine starts on line 3 and runs to line 6, so record 4 starts on line 7.
    ids = {q.id: q for q in b}
    assert ids["college_medicine-002"].meta["source_line"] == 3
    assert ids["college_medicine-002"].text.endswith("I. Gustatory system\nII. Auditory system\nIII. Olfactory system")
    assert ids["college_medicine-003"].meta["source_line"] == 7
    assert all(q.n_select == 1 for q in b)


def test_jmmlu(bench):
    med, ext = bench("jmmlu-med"), bench("jmmlu-med-ext")
    assert len(med) == 824 and len(ext) == 1273
    assert {q.meta["subject"] for q in med} == {q.meta["subject"] for q in bench("mmlu-med")}
    assert Counter(q.meta["subject"] for q in ext) == {"anatomy": 132, "clinical_knowledge": 150,
                                                       "college_biology": 143, "college_medicine": 150,
                                                       "medical_genetics": 99, "professional_medicine": 150,
                                                       "human_aging": 150, "nutrition": 149, "virology": 150}
    first = med.questions[0]  # UTF-8 BOM stripped, choices stripped of their padding (" 水頭症…")
    assert first.text.startswith("「皿状顔貌") and first.choices[2] == "水頭症による前頭骨の肥大"
    assert first.answer == {1} and first.language == "ja" and first.id == "anatomy-000"


def test_mmlu_style_errors(tmp_path):
    folder = tmp_path / "jmmlu" / "JMMLU"
    folder.mkdir(parents=True)
    (folder / "anatomy.csv").write_bytes("\ufeffq,a,b,c,d,E\n".encode("utf-8"))
    with pytest.raises(LoaderError, match=r"anatomy\.csv:1: field 'answer': unknown answer letter 'E'"):
        load_benchmark("jmmlu-med:anatomy", tmp_path)
    (folder / "anatomy.csv").write_text("q,a,b,c,D\n", encoding="utf-8")
    with pytest.raises(LoaderError, match=r"anatomy\.csv:1: expected 6 columns"):
        load_benchmark("jmmlu-med:anatomy", tmp_path)


def test_pubmedqa(bench):
    test, everything = bench("pubmedqa"), bench("pubmedqa:all")
    assert len(test) == 500 and len(everything) == 1000
    assert Counter(q.meta["split"] for q in everything) == {"test": 500, "train": 500}
    assert Counter(q.answer_texts[0] for q in test) == {"yes": 276, "no": 169, "maybe": 55}
    q = {q.id: q for q in everything}["21645374"]
    assert q.choices == ("yes", "no", "maybe") and q.answer == {0}
    assert q.context.startswith("Programmed cell death (PCD) is the regulated death") and "\n" in q.context
    assert q.meta["context_labels"][0] == "BACKGROUND" and q.explanation and q.meta["source_line"] == 2


def test_pubmedqa_decision_must_agree_with_ground_truth(tmp_path):
    folder = tmp_path / pubmedqa.FOLDER
    folder.mkdir(parents=True)
    record = {"QUESTION": "Q?", "CONTEXTS": ["c"], "LABELS": ["L"], "LONG_ANSWER": "x", "MESHES": [], "YEAR": "2000",
              "final_decision": "yes"}
    (folder / "ori_pqal.json").write_text(json.dumps({"1": record}, indent=1), encoding="utf-8")
    (folder / "test_ground_truth.json").write_text(json.dumps({"1": "no"}), encoding="utf-8")
    with pytest.raises(LoaderError, match=r"ori_pqal\.json:2: field 'final_decision': 'yes' disagrees"):
        load_benchmark("pubmedqa", tmp_path)
    (folder / "test_ground_truth.json").write_text(json.dumps({"1": "perhaps"}), encoding="utf-8")
    with pytest.raises(LoaderError, match=r"test_ground_truth\.json:1: field '1': 'perhaps' is not one of"):
        load_benchmark("pubmedqa", tmp_path)
