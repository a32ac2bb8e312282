"""Synthesised instruction data: passages, robust parsing of model outputs, filters (pure, hand-written outputs)."""

from __future__ import annotations

from collections import Counter

import pytest

from jmedllm.train.synth import FilterSettings, QAPair, filter_pairs, parse_qa_pairs, split_passages, synth_prompt


@pytest.mark.parametrize("output, expected", [
    # numbered Q/A, one pair on one line, another over two lines
    ("1. Q: 心筋梗塞の再灌流療法は？\nA: PCI\n2. Q: 糖尿病の三大合併症は？ A: 網膜症、腎症、神経障害",
     [("心筋梗塞の再灌流療法は？", "PCI"), ("糖尿病の三大合併症は？", "網膜症、腎症、神経障害")]),
    # 質問 / 回答 with full-width numbers and colons, and bracketed labels
    ("質問１：ワルファリンの効果判定に用いる検査は？\n回答１：PT-INR\n\n【質問】高カリウム血症の心電図所見は？\n【回答】テント状T波",
     [("ワルファリンの効果判定に用いる検査は？", "PT-INR"), ("高カリウム血症の心電図所見は？", "テント状T波")]),
    ("「質問」ヘパリンの拮抗薬は何か。\n「回答」プロタミン硫酸塩", [("ヘパリンの拮抗薬は何か。", "プロタミン硫酸塩")]),
    ("問：アナフィラキシーの第一選択薬は？\n答：アドレナリンの筋注", [("アナフィラキシーの第一選択薬は？", "アドレナリンの筋注")]),
    # an answer running over several lines; English labels with numbers
    ("Question 1: What is the antidote for heparin?\nAnswer 1: Protamine\nsulfate, given slowly.\nQuestion 2: What causes scurvy?\nAnswer 2: Vitamin C deficiency",
     [("What is the antidote for heparin?", "Protamine sulfate, given slowly."), ("What causes scurvy?", "Vitamin C deficiency")]),
    # JSON lines (with a code fence) and a JSON array
    ('```jsonl\n{"question": "肺塞栓の確定診断は？", "answer": "造影CT"}\n{"質問": "急性膵炎で上昇する酵素は？", "回答": "リパーゼ"}\n```',
     [("肺塞栓の確定診断は？", "造影CT"), ("急性膵炎で上昇する酵素は？", "リパーゼ")]),
    ('Here you go: [{"q": "What is PT-INR for?", "a": "Warfarin monitoring"}]', [("What is PT-INR for?", "Warfarin monitoring")]),
    # prose that merely starts with "A" is not an answer label: the first question has no answer, no pair
    ("Q: 未完の質問は？\nA patient came in.\nQ: 次の質問は？\nA: 答えです", [("次の質問は？", "答えです")]),
    # junk: nothing to parse
    ("aaaa bbbb 1234 ####", []),
    ("", []),
])
def test_parse_qa_pairs(output, expected):
    assert [(p.question, p.answer) for p in parse_qa_pairs(output)] == expected


def test_filters_count_every_rejection():
    pairs = [
        QAPair("心筋梗塞の再灌流療法は？", "PCI"),                       # kept
        QAPair("心筋梗塞の再灌流療法は?", "経皮的冠動脈インターベンション"),   # same question after normalisation
        QAPair("何？", "x"),                                            # question shorter than 5 characters
        QAPair("PT-INRはワルファリンの指標か？", "PT-INR"),                # the answer is in the question
        QAPair("ヘパリンの拮抗薬は何か。", "ヘパリンの拮抗薬は何か"),        # answer equals question (normalised)
        QAPair("長すぎる回答の質問ですか？", "あ" * 801),                   # answer longer than 800
        QAPair("？？？？？？", "！！"),                                   # no letters at all
    ]
    kept, rejected = filter_pairs(pairs)
    assert kept == [QAPair("心筋梗塞の再灌流療法は？", "PCI")]
    assert rejected == Counter({"duplicate": 1, "question_too_short": 1, "answer_in_question": 1,
                                "answer_equals_question": 1, "answer_too_long": 1, "no_letters": 1})
    assert sum(rejected.values()) + len(kept) == len(pairs)


def test_deduplication_spans_calls():
    seen: set[str] = set()
    filter_pairs([QAPair("ワルファリンの拮抗薬は？", "ビタミンK")], seen=seen)
    kept, rejected = filter_pairs([QAPair("ワルファリンの拮抗薬は?", "ビタミンK製剤")], seen=seen)
    assert kept == [] and rejected == Counter({"duplicate": 1})


def test_filter_settings_are_honoured():
    kept, rejected = filter_pairs([QAPair("短い？", "答")], FilterSettings(min_question_chars=2))
    assert len(kept) == 1 and not rejected


def test_passages_respect_the_limit_and_keep_all_text():
    text = "第一段落の一文目。第一段落の二文目。\n\n第二段落。" + "長" * 30
    passages = split_passages(text, max_chars=20)
    assert all(len(p) <= 20 for p in passages)
    # every character of the text (but the whitespace between paragraphs) is in some passage, in order
    assert "".join(passages).replace("\n", "") == text.replace("\n", "")


def test_prompts_in_both_languages():
    assert "3個" in synth_prompt("本文", 3, "ja") and "質問:" in synth_prompt("本文", 3, "ja")
    assert "write 2 question-answer pairs" in synth_prompt("Text", 2, "en")
    with pytest.raises(ValueError, match="language"):
        synth_prompt("x", 1, "fr")


def test_synth_end_to_end_on_a_tiny_real_model(tmp_path, tiny_model_dir, data_root, capsys):
    """The plumbing runs on a real (random, so junk-writing) model: every generation is parsed and counted."""
    import json

    from jmedllm.cli import main

    out = tmp_path / "synth.jsonl"
    code = main(["synth", "--model", str(tiny_model_dir), "--corpus", str(data_root / "medtxt" / "MedTxt-RR-JA-test.xml"),
                 "--limit", "2", "--max-passage-chars", "120", "--max-new-tokens", "24", "--pairs", "2",
                 "--out", str(out), "--device", "cpu"])
    assert code == 0
    stats = json.loads(out.with_name("synth.stats.json").read_text(encoding="utf-8"))
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert stats["documents"] == 2 and stats["generations"] == stats["passages"] >= 2
    assert stats["parsed_pairs"] == stats["kept_pairs"] + sum(stats["rejected"].values())
    assert stats["kept_pairs"] == len(records)
    assert stats["generations_without_pairs"] <= stats["generations"]
    assert stats["model"]["model"] == str(tiny_model_dir)
    for r in records:  # whatever survived carries its provenance
        assert r["source"]["kind"] == "synth" and r["source"]["document_id"].startswith("MedTxt-RR-JA-test.xml#")
    assert "pairs kept from" in capsys.readouterr().out
    assert main(["synth", "--model", str(tiny_model_dir), "--corpus", str(data_root / "medtxt"), "--out", str(out)]) == 2


def test_run_synth_counts_add_up_with_a_real_engine(tmp_path, tiny_model_dir):
    """In process, on the real engine: passages are cut as specified and every parsed pair is accounted for."""
    from jmedllm.engines import load_engine
    from jmedllm.schema import GenerationParams
    from jmedllm.train.corpus import Document
    from jmedllm.train.synth import run_synth

    engine = load_engine("hf", model=str(tiny_model_dir), device="cpu")
    docs = [Document("doc-1", "心筋梗塞の治療は再灌流療法である。" * 3, "notes.txt", 4)]
    result = run_synth(docs, engine, pairs_per_passage=1, max_passage_chars=40,
                       params=GenerationParams(max_new_tokens=16))
    assert result.stats["passages"] == 2  # 51 characters in passages of at most 40: two sentences + one
    assert result.stats["parsed_pairs"] == result.stats["kept_pairs"] + sum(result.stats["rejected"].values())
