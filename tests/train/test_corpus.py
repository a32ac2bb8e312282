"""Corpus readers and packing: provenance, errors naming file/line/field, no token lost."""

from __future__ import annotations

import json

import pytest

from jmedllm.train.corpus import (
    CorpusError,
    pack_documents,
    read_corpus,
    read_jsonl,
    read_medtxt,
    read_text_file,
    tokenize_documents,
)


def test_text_units(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("心筋梗塞の症例。\n胸痛を訴えた。\n\n\n糖尿病の症例。\n", encoding="utf-8")
    paras = read_text_file(f, "paragraph").documents
    assert [(d.id, d.line, d.text) for d in paras] == [
        ("notes.txt:1", 1, "心筋梗塞の症例。\n胸痛を訴えた。"),
        ("notes.txt:5", 5, "糖尿病の症例。"),
    ]
    lines = read_text_file(f, "line").documents
    assert [(d.line, d.text) for d in lines] == [(1, "心筋梗塞の症例。"), (2, "胸痛を訴えた。"), (5, "糖尿病の症例。")]
    (whole,) = read_text_file(f, "file").documents
    assert whole.text.startswith("心筋梗塞") and whole.text.endswith("糖尿病の症例。")


def test_text_file_that_is_not_utf8_names_the_line(tmp_path):
    f = tmp_path / "sjis.txt"
    f.write_bytes("一行目\n".encode() + "二行目".encode("shift_jis"))
    with pytest.raises(CorpusError, match=r"sjis.txt:2: not valid UTF-8"):
        read_text_file(f)


def test_jsonl_reader_provenance_and_empty_documents(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text("\n".join([
        json.dumps({"id": "doc-a", "body": {"text": "本文A"}}, ensure_ascii=False),
        "",
        json.dumps({"body": {"text": "本文B"}}, ensure_ascii=False),
        json.dumps({"body": {"text": "   "}}),
    ]), encoding="utf-8")
    c = read_jsonl(f, "body.text")
    assert [(d.id, d.line, d.text) for d in c.documents] == [("doc-a", 1, "本文A"), ("c.jsonl:3", 3, "本文B")]
    assert c.empty == [f"{f}:4"]  # recorded, not dropped silently


@pytest.mark.parametrize("line, message", [
    ('{"text": "ok"', r"c.jsonl:2: invalid JSON"),
    ('["text"]', r"c.jsonl:2: expected a JSON object, got list"),
    ('{"body": "x", "title": "t"}', r"c.jsonl:2: field 'text' missing \(fields: body, title\)"),
    ('{"text": 3}', r"c.jsonl:2: field 'text' must be a string, got int"),
])
def test_jsonl_errors_name_file_line_and_field(tmp_path, line, message):
    f = tmp_path / "c.jsonl"
    f.write_text('{"text": "fine"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=message):
        read_jsonl(f)


def test_medtxt_articles_become_documents(data_root):
    cr = read_medtxt(data_root / "medtxt" / "MedTxt-CR-JA-test.xml")
    rr = read_medtxt(data_root / "medtxt" / "MedTxt-RR-JA-test.xml")
    # counted by hand with `grep -o "<article " FILE | wc -l`: 75 case reports, 63 radiology reports
    assert (len(cr.documents), len(rr.documents)) == (75, 63)
    first = cr.documents[0]
    assert first.id == "MedTxt-CR-JA-test.xml#JP0113-1" and first.line == 12
    assert first.text.splitlines()[0] == "ワルファリンとベンズブロマロン、アミオダロンの相互作用(症例報告)"  # the title
    assert first.text.splitlines()[1].startswith("【目的】ワルファリン")
    assert all(not line.startswith(" ") for line in first.text.splitlines())  # lines stripped
    assert rr.documents[0].id == "MedTxt-RR-JA-test.xml#72" and rr.documents[0].text.startswith("左肺尖部背側")
    assert len({d.id for d in cr.documents + rr.documents}) == 138


def test_medtxt_errors(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<root><articles>\n<article id='1'>a</article>\n<article id='1'>b</article></articles></root>")
    with pytest.raises(CorpusError, match=r"bad.xml:3: article id '1' repeats the one at line 2"):
        read_medtxt(bad)
    bad.write_text("<root><articles>\n<article id='1'>a</artcle></articles></root>")
    with pytest.raises(CorpusError, match=r"bad.xml:2: invalid XML"):
        read_medtxt(bad)
    bad.write_text("<root><item>a</item></root>")
    with pytest.raises(CorpusError, match="no <article> elements"):
        read_medtxt(bad)


def test_read_corpus_walks_folders_and_rejects_unknown_files(tmp_path, data_root):
    c = read_corpus([data_root / "medtxt"])
    assert len(c.documents) == 138 and len(c.files) == 2
    odd = tmp_path / "x.csv"
    odd.write_text("a,b")
    with pytest.raises(CorpusError, match=r"x.csv: unknown corpus file type '.csv'"):
        read_corpus([odd])
    with pytest.raises(CorpusError, match="no such file"):
        read_corpus([tmp_path / "missing.txt"])


def test_packing_keeps_every_token_in_order():
    docs = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10, 11, 12, 13, 14], [15]]
    p = pack_documents(docs, 4)
    # 15 tokens in blocks of 4: 4 + 4 + 4 + 3; the last, shorter block is kept by default
    assert p.blocks == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15]]
    # document pieces per block: [1-4] is doc 1; [5] doc 1, [6,7] doc 2, [8] doc 3; ...
    assert p.seq_lengths == [[4], [1, 2, 1], [4], [2, 1]]
    assert [sum(s) for s in p.seq_lengths] == [len(b) for b in p.blocks]
    assert sum(p.blocks, []) == sum(docs, [])
    assert (p.n_tokens, p.dropped_tokens, p.split_documents) == (15, 0, 2)  # docs 1 and 3 cross a block edge


def test_packing_drop_policy_records_what_it_drops():
    p = pack_documents([[1, 2, 3], [4, 5, 6, 7]], 3, last_block="drop")
    assert p.blocks == [[1, 2, 3], [4, 5, 6]] and p.dropped_tokens == 1  # token 7 alone in the last block
    assert p.stats()["dropped_tokens"] == 1
    assert pack_documents([[1, 2, 3]], 3, last_block="drop").dropped_tokens == 0  # exact fit: nothing dropped


def test_tokenize_documents_ends_each_with_eos(tiny_model_dir):
    from transformers import AutoTokenizer

    from jmedllm.train.corpus import Document

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    docs = [Document("a", "心筋梗塞", "x"), Document("b", "糖尿病の合併症", "x")]
    ids = tokenize_documents(docs, tok)
    assert [t[-1] for t in ids] == [tok.eos_token_id] * 2
    assert ids[0][:-1] == tok("心筋梗塞")["input_ids"]
