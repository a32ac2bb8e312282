"""Contamination guard: planted evaluation questions are found and named; clean text passes."""

from __future__ import annotations

import json
import re

import pytest

from jmedllm.train.contamination import (
    ContaminationError,
    EvalItem,
    TrainingText,
    check_contamination,
    normalize_for_match,
)
from jmedllm.train.corpus import read_corpus


def igakuqa_items(data_root, block="112-A") -> list[EvalItem]:
    path = data_root / "igakuqa" / "data" / "2018" / f"{block}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [EvalItem("igakuqa", r["problem_id"], r["problem_text"], tuple(r["choices"])) for r in rows]


def by_id(items, item_id):
    return next(i for i in items if i.item_id == item_id)


@pytest.mark.parametrize("text, expected", [
    ("７５歳の男性。", "75歳の男性"),                       # full-width digits, punctuation
    ("Select  TWO  options!", "selecttwooptions"),           # case and spaces
    ("血圧150/72 mmHg（座位）", "血圧15072mmhg座位"),          # symbols and brackets
    ("「緊急手術が必要です」", "緊急手術が必要です"),
])
def test_normalisation(text, expected):
    assert normalize_for_match(text) == expected


def test_containment_score_by_hand():
    # ngram 3. Stem "abcdef" -> abc, bcd, cde, def (4 informative n-grams: one item, none generic);
    # choice "xy" is shorter than 3 -> a substring. Record "abcdeXxy" normalises to "abcdexxy": 3 of the
    # 4 stem n-grams -> share 0.75 >= 0.5. With min_informative 4 the stem may flag alone: near.
    item = EvalItem("b", "q1", "abcdef", ("xy",))
    kw = dict(ngram=3, threshold=0.5, min_exact_chars=3, min_informative=4)
    report = check_contamination([TrainingText("t.jsonl:1", "abcdeXxy")], [item], **kw)
    (o,) = report.overlaps
    assert (o.kind, o.score, o.choices, o.item_id, o.record) == ("near", 0.75, 1.0, "q1", "t.jsonl:1")
    assert check_contamination([TrainingText("t", "abcdeXxy")], [item], **(kw | {"threshold": 0.76})).clean
    # A short stem (min_informative 5 > 4) needs its choices: without "xy" nothing is flagged, with it, near.
    short = kw | {"min_informative": 5}
    assert check_contamination([TrainingText("t", "abcdeX")], [item], **short).clean
    assert [o.kind for o in check_contamination([TrainingText("t", "abcdeXxy")], [item], **short).overlaps] == ["near"]


def test_generic_stem_ngrams_do_not_count():
    # Five items open with the same clause; a record holding only that clause flags none of them,
    # while the record holding one item's own vignette flags exactly that item.
    generic = "この患者に投与すべき薬剤として最も適切なのはどれか"
    vignettes = ["六十五歳の男性で三日前から続く発熱と咳嗽を主訴に来院し胸部エックス線写真で右下肺野に浸潤影を認めた",
                 "二十八歳の女性で妊娠三十週に血圧の上昇と蛋白尿を指摘され頭痛と視覚異常を訴えて救急搬送された",
                 "七十歳の女性で転倒後から続く右股関節痛のため歩行困難となり単純エックス線写真で大腿骨頸部に骨折線を認めた",
                 "四十五歳の男性で健康診断にて空腹時血糖値とヘモグロビンエーワンシーの高値を指摘され精査目的に受診した",
                 "五十二歳の女性で一か月前から動悸と体重減少と手指振戦があり甲状腺のびまん性腫大を触知した"]
    items = [EvalItem("b", f"q{i}", v + generic, ("アスピリン", "ワルファリン", "ヘパリン")) for i, v in enumerate(vignettes)]
    report = check_contamination([TrainingText("r1", "別の症例である。" + generic + "。アスピリン ワルファリン ヘパリン"),
                                  TrainingText("r2", vignettes[2] + generic)], items, min_informative=20)
    assert [(o.record, o.item_id) for o in report.overlaps] == [("r2", "q2")]
    # The clause alone, as a short item of its own, is generic too: it never flags by itself.
    short = items + [EvalItem("b", "g", generic + "。", choices=("a薬", "b薬"))]
    assert check_contamination([TrainingText("r3", generic)], short, min_informative=20).clean


def test_shared_choice_list_alone_never_flags():
    choices = ("アムロジピン", "エナラプリル", "カンデサルタン", "ヒドロクロロチアジド", "ビソプロロール")
    item = EvalItem("b", "q", "妊娠二十週の高血圧合併妊婦に対して禁忌となる降圧薬はどれか。", choices)
    other_exam = TrainingText("dental:1", "歯科治療時に注意すべき降圧薬はどれか。" + " ".join(choices))
    assert check_contamination([other_exam], [item]).clean
    same = TrainingText("copy:1", item.stem + " ".join(choices))
    assert [o.kind for o in check_contamination([same], [item]).overlaps] == ["exact"]


def test_verbatim_question_in_a_longer_record_is_exact_and_named(data_root):
    items = igakuqa_items(data_root)
    q = by_id(items, "112A22")
    planted = ("以下は練習問題です。\n" + q.stem + "\n" +
               "\n".join(f"{l}. {c}" for l, c in zip("abcde", q.choices)) + "\n答え: e")
    records = [TrainingText("train.jsonl:1", "高血圧の治療について述べる。"), TrainingText("train.jsonl:2", planted)]
    report = check_contamination(records, items)
    assert [(o.benchmark, o.item_id, o.record, o.kind) for o in report.overlaps] == [
        ("igakuqa", "112A22", "train.jsonl:2", "exact")]
    text = report.format()
    assert "112A22" in text and "train.jsonl:2" in text


def test_lightly_edited_question_is_near(data_root):
    items = igakuqa_items(data_root)
    q = by_id(items, "112A34")  # 102 characters
    edited = (q.stem.replace("2歳の男児", "３歳の男児")          # another age, full-width
              .replace("母親", "父親", 1)                        # a changed word
              .replace("。", "．"))                              # other punctuation
    report = check_contamination([TrainingText("synth.jsonl:7", edited)], items)
    (o,) = report.overlaps
    assert (o.item_id, o.kind, o.record) == ("112A34", "near", "synth.jsonl:7")
    assert 0.5 <= o.score < 1


def test_short_stem_needs_its_choices_to_be_exact():
    # The stem (8 normalised characters) is below min_exact_chars: alone it proves nothing.
    long_choice = "洞不全症候群ではペースメーカー植込みを考慮する"
    item = EvalItem("b", "q", "正しいのはどれか。", ("心房細動", "心室細動", long_choice))
    only_stem = TrainingText("r1", "次のうち正しいのはどれか。気胸の治療を答えよ。")
    whole = TrainingText("r2", f"正しいのはどれか。 a 心房細動 b 心室細動 c {long_choice}")
    report = check_contamination([only_stem, whole], [item], ngram=13)
    assert [(o.record, o.kind) for o in report.overlaps] == [("r2", "exact")]


def test_items_too_short_to_attribute_are_counted():
    # No segment reaches 13 characters: nothing can be indexed, the item is reported as unchecked.
    item = EvalItem("b", "tiny", "正しいのは?", ("はい", "いいえ"))
    report = check_contamination([TrainingText("r", "正しいのは? はい いいえ")], [item])
    assert report.unchecked_items == 1 and report.clean
    assert "1 items too short to check" in report.format()


def test_clean_corpus_passes(data_root):
    corpus = read_corpus([data_root / "medtxt"])
    records = [TrainingText(f"{d.source}:{d.line}", d.text) for d in corpus.documents]
    report = check_contamination(records, igakuqa_items(data_root) + igakuqa_items(data_root, "112-B"))
    assert report.clean, report.format()
    assert report.records == 138 and report.items == 75 + 49  # `wc -l`: 112-A has 75 questions, 112-B 49


def test_error_carries_the_report():
    item = EvalItem("igakuqa", "112A1", "高アンモニア血症をきたす疾患はどれか。オルニチン", ())
    report = check_contamination([TrainingText("f.txt:3", item.stem)], [item])
    err = ContaminationError(report, hint="pass --allow-overlap")
    assert err.report is report and "112A1" in str(err) and "f.txt:3" in str(err) and "--allow-overlap" in str(err)


# Hand-written English items (not from any exam) in the shape of a licensing exam's.
GENERIC = "Which medication should be administered immediately?"
VIGNETTES = [
    "A 64-year-old man is brought to the emergency department with crushing chest pain that began an hour ago.",
    "A 23-year-old woman collapses after a bee sting at a picnic; her lips are swollen and she is wheezing.",
    "A 71-year-old woman with heart failure has a pulse of 38 per minute and feels faint when she stands up.",
    "A 30-year-old primigravid woman at 35 weeks has a blood pressure of 168/110 mmHg and a generalized seizure.",
    "A 45-year-old man on dialysis has peaked T waves and a serum potassium of 7.4 mEq/L.",
    "A 5-year-old boy has a barking cough, inspiratory stridor and a temperature of 38.4 degrees Celsius.",
]
DRUGS = ("Dopamine", "Atropine", "Adrenaline", "Magnesium sulfate", "Calcium gluconate")


def test_generic_english_stem_with_another_vignette_and_choices_does_not_flag():
    """The evaluation item is the generic question alone (its vignette is in an image); a training item asks
    the same question after another vignette, with other choices, one drug in common."""
    item = EvalItem("exam", "2022-C67", GENERIC, DRUGS)
    record = TrainingText("train.jsonl:1", VIGNETTES[3] + " Which medication should be administered? "
                          "a. Loop diuretic b. Magnesium sulfate c. Nifedipine d. Diazepam e. Furosemide")
    # Other exams ask it too: the reference items teach the guard that this stem is phrasing.
    reference = [EvalItem("other-exam", f"r{i}", v + " " + GENERIC, DRUGS[i % 5:] + DRUGS[:i % 5])
                 for i, v in enumerate(VIGNETTES)]
    assert check_contamination([record], [item], reference=reference).clean
    # Without a reference the stem's n-grams look specific and the shared question is taken for a copy.
    (o,) = check_contamination([record], [item]).overlaps
    assert o.kind == "near" and o.choices == 0.2
    # A copy of the item itself is still caught, reference or not, with reordered choices and other spacing.
    copy = TrainingText("train.jsonl:2", "Q. which medication should be administered  immediately ?\n" +
                        "\n".join(f"({c}) {d}" for c, d in zip("abcde", DRUGS[::-1])))
    assert [(o.record, o.kind) for o in check_contamination([copy], [item], reference=reference).overlaps] == [
        ("train.jsonl:2", "exact")]


def test_short_topic_stem_beside_other_choices_does_not_flag():
    """Same topic, same short question, other choices: another item, even with no reference (whole-item rule)."""
    item = EvalItem("exam", "2022-D2", "Which statement made by a patient strongly suggests schizophrenia?",
                    ('"My thoughts are broadcast on the radio to everyone in town."',
                     '"I keep washing my hands because they never feel clean enough."',
                     '"I am afraid of having a panic attack on a crowded train."',
                     '"I cannot speak in front of my colleagues because I blush."',
                     '"I have not slept for three days and I feel full of energy."'))
    record = TrainingText("train.jsonl:9", "Which of the following statements made by a patient strongly suggests "
                          "schizophrenia? a. \"A voice comments on everything I do.\" b. \"I check the stove ten times "
                          "before leaving.\" c. \"I feel sad every morning.\" d. \"I drink to calm my nerves.\" "
                          "e. \"I worry about my health all day.\"")
    report = check_contamination([record], [item])
    assert report.clean, report.format()
    # The same record with the item's own choices is the item, lightly edited: near.
    copy = TrainingText("train.jsonl:10", "Which of the following statements made by a patient strongly suggests "
                        "schizophrenia? " + " ".join(item.choices))
    assert [o.kind for o in check_contamination([copy], [item]).overlaps] == ["near"]


def test_planted_english_vignette_with_an_edit_is_near():
    stem = (VIGNETTES[0] + " He has smoked a pack a day for 40 years. His blood pressure is 92/60 mmHg and an "
            "electrocardiogram shows ST elevation in leads II, III and aVF. " + GENERIC)
    item = EvalItem("exam", "q", stem, DRUGS)
    reference = [EvalItem("other-exam", f"r{i}", v + " " + GENERIC, DRUGS) for i, v in enumerate(VIGNETTES[1:])]
    edited = stem.replace("64-year-old", "66-year-old").replace("92/60", "90/58")
    report = check_contamination([TrainingText("synth:1", "Practice case.\n" + edited)], [item], reference=reference)
    (o,) = report.overlaps
    assert o.kind == "near" and o.score >= 0.5 and o.item >= 0.5


def test_translated_item_is_caught_through_the_guarded_english_edition(data_root):
    """Cross-language matching is not supported: a translation is caught when the exam's English edition is guarded
    (as the demo guards igakuqa-en:2022 beside igakuqa:2022), and not by the Japanese exam alone."""
    from jmedllm.benchmarks import load_benchmark

    ja = [EvalItem.from_question(q) for q in load_benchmark("igakuqa:2022", data_root).questions]
    en = {q.id: q for q in load_benchmark("igakuqa-en:2022", data_root).questions}
    q = en["116A30"]
    planted = TrainingText("mt.jsonl:1", q.text + "\n" + "\n".join(q.choices))
    assert check_contamination([planted], ja).clean
    both = ja + [EvalItem.from_question(e) for e in en.values()]
    assert [(o.benchmark, o.item_id) for o in check_contamination([planted], both).overlaps] == [("igakuqa-en", "116A30")]


def test_demo_drops_only_real_repeats(tmp_path, data_root, capsys):
    """The demo's training data (IgakuQA 2018-2021, Japanese and English) against its evaluation exam (2022, both
    languages): the guard drops the two items that repeat a 2022 item (113E2: 116B10's stem with four of its five
    choices; 114F50: over half of 116A24's vignette) and nothing for a generic stem or a shared choice list."""
    from jmedllm.demo import DemoSettings, build_instruction_file

    _, kept, dropped = build_instruction_file(DemoSettings(out=tmp_path, data_root=data_root))
    said = capsys.readouterr().err
    assert dropped == 2 and kept > 3000
    assert sorted(re.findall(r"dropped training item (\S+): \w+ overlap \([0-9.]+\) with (\S+ \S+)", said)) == [
        ("igakuqa:113E2", "igakuqa 116B10"), ("igakuqa:114F50", "igakuqa 116A24")]


def test_another_exam_as_training_data_is_clean_and_planted_items_are_all_caught(data_root):
    """YakugakuQA (the pharmacist exam as training data: shared drug-name choices, generic stems) raises no flag
    against the 2022 exam, the guard knowing nothing of it (left out of the reference); the 2022 items planted verbatim or with reordered choices are all caught."""
    from jmedllm.benchmarks import load_benchmark
    from jmedllm.train.contamination import reference_items
    from jmedllm.train.guard_index import ItemIndex

    ja = list(load_benchmark("igakuqa:2022", data_root).questions)
    items = [EvalItem.from_question(q) for q in ja]
    reference = [r for r in reference_items(data_root) if r.benchmark != "yakugakuqa"]
    index = ItemIndex(items, 13, 5, reference)
    other = list(load_benchmark("yakugakuqa", data_root).questions)
    records = [TrainingText(q.id, "\n".join([q.context or "", q.text, *q.choices])) for q in other]
    report = check_contamination(records, items, index=index)
    assert report.clean and report.records == len(other) > 4000, report.format()
    planted = [TrainingText(q.id, "前置き。" + q.text + "\n" + "\n".join(q.choices[::-1])) for q in ja if len(q.text) >= 40]
    caught = {o.record for o in check_contamination(planted, items, index=index).overlaps if o.record == o.item_id}
    assert len(caught) == len(planted) > 200


def test_a_dental_exam_as_training_data_is_clean_and_planted_items_are_all_caught(data_root):
    """The issue's case: a dental exam used as training data (MedMCQA's 1,318 Dental items, Indian postgraduate
    dental entrance questions: generic stems, shared drug and material names in the choices) against the demo's
    English evaluation exam (IgakuQA 2022, English edition) and MedQA-USMLE, the guard knowing nothing of MedMCQA
    (left out of the reference): no flag; the evaluation items planted with reordered choices are all caught."""
    from jmedllm.benchmarks import load_benchmark
    from jmedllm.train.contamination import reference_items
    from jmedllm.train.guard_index import ItemIndex

    evaluation = [*load_benchmark("igakuqa-en:2022", data_root).questions, *load_benchmark("medqa", data_root).questions]
    items = [EvalItem.from_question(q) for q in evaluation]
    reference = [r for r in reference_items(data_root) if r.benchmark != "medmcqa"]
    index = ItemIndex(items, 13, 5, reference)
    dental = [q for q in load_benchmark("medmcqa", data_root).questions if q.meta.get("subject") == "Dental"]
    records = [TrainingText(q.id, "\n".join([q.text, *q.choices])) for q in dental]
    report = check_contamination(records, items, index=index)
    assert report.clean and report.records == len(dental) == 1318, report.format()
    planted = [TrainingText(q.id, "Practice question. " + q.text + "\n" + "\n".join(q.choices[::-1]))
               for q in evaluation[:400] if len(q.text) >= 80]
    caught = {o.record for o in check_contamination(planted, items, index=index).overlaps if o.record == o.item_id}
    assert len(caught) == len(planted) > 300
