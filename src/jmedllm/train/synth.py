"""Synthesise instruction data: a model writes question-answer pairs about passages of medical text.

JMedLoRA instruction-tuned on QA pairs that an LLM generated from medical documents; this is
that step, on any engine (``generate``):

1. ``split_passages``: each document is cut into passages of at most ``max_chars`` characters at
   paragraph, then sentence boundaries (a sentence longer than that is cut at ``max_chars``).
2. ``synth_prompt``: a Japanese or English instruction asks for ``n`` pairs about the passage, in
   a fixed layout (``質問: ... / 回答: ...`` or ``Q: ... / A: ...``).
3. ``parse_qa_pairs``: the output is read robustly: JSON lines or a JSON array of objects
   (question/answer, q/a, 質問/回答, instruction/output), or labelled lines — ``Q:`` / ``A:``,
   ``Q1.`` / ``A1.``, ``1. Q:``, ``質問:`` / ``回答:``, ``問:`` / ``答:``, ``【質問】`` / ``「回答」`` …,
   full-width colons included; a label's text runs until the next label.
4. ``filter_pairs``: pairs are rejected, with the reason counted, when the question or answer is
   too short or too long, when the normalised answer occurs in the question (it gives itself away),
   or when the normalised question repeats one already kept (deduplication).

``run_synth`` returns the kept pairs as raw instruction records (``instruction`` / ``output``, read
back by jmedllm.train.instructions) with provenance (document id, file and line, passage index,
model) and the counts of every stage, so that junk output is filtered *and counted*.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from jmedllm.train.contamination import normalize_for_match
from jmedllm.train.corpus import Document

SYNTH_INSTRUCTIONS = {
    "ja": ("以下の医学文書を読み、その内容だけから答えられる質問と回答の組を{n}個作成してください。"
           "各組は次の形式で書いてください。\n質問: (質問)\n回答: (回答)\n\n文書:\n{passage}\n\n"),
    "en": ("Read the following medical text and write {n} question-answer pairs that can be answered from it "
           "alone. Write each pair as:\nQ: (question)\nA: (answer)\n\nText:\n{passage}\n\n"),
}

_SENTENCE_END = re.compile(r"(?<=[。．！？!?])|(?<=\.)\s+")
_NUM = r"(?:\d+|[０-９]+)"
_Q_WORDS = r"(?:Q|Question|質問|問題|問い|問)"
_A_WORDS = r"(?:A|Answer|回答|答え|解答|答)"
_BRACKETS = "【「『[（(<《〈"
_CLOSERS = "】」』]）)>》〉"


def _label(words: str) -> re.Pattern[str]:
    # optional "1." / "(1)" / "1)" numbering, optional bracket, the word, optional number, a bracket or a colon
    return re.compile(
        rf"^\s*(?:[-*•・]\s*)?(?:\(?{_NUM}[.)．、:：]?\)?\s*)?[{re.escape(_BRACKETS)}]?\s*{words}\s*{_NUM}?\s*"
        rf"(?:[{re.escape(_CLOSERS)}]\s*[:：.．]?|[:：.．)）])\s*",
        re.IGNORECASE,
    )


_Q_LABEL = _label(_Q_WORDS)
_A_LABEL = _label(_A_WORDS)
# An answer label inside a question line: "Q: ... A: ..." on one line.
_A_INLINE = re.compile(rf"\s+(?:[{re.escape(_BRACKETS)}]\s*)?{_A_WORDS}\s*{_NUM}?\s*(?:[{re.escape(_CLOSERS)}]\s*[:：]?|[:：])\s*",
                       re.IGNORECASE)
_JSON_KEYS = (("question", "answer"), ("q", "a"), ("質問", "回答"), ("instruction", "output"), ("問題", "解答"))


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str


def split_passages(text: str, max_chars: int = 800) -> list[str]:
    """Passages of at most ``max_chars`` characters, cut at paragraph, then sentence boundaries.

    Consecutive pieces are joined while they fit (paragraphs with a newline, sentences directly).

    >>> split_passages("一文目。二文目。\n\n三文目。", max_chars=8)
    ['一文目。二文目。', '三文目。']
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    pieces: list[tuple[str, bool]] = []  # (text, starts a paragraph)
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        sentences = [para] if len(para) <= max_chars else [s.strip() for s in _SENTENCE_END.split(para)]
        first = True
        for sent in sentences:
            while len(sent) > max_chars:
                pieces.append((sent[:max_chars], first))
                sent, first = sent[max_chars:].strip(), False
            if sent:
                pieces.append((sent, first))
                first = False
    passages: list[str] = []
    cur = ""
    for piece, new_paragraph in pieces:
        joiner = "\n" if new_paragraph else ("" if re.search(r"[^\x00-\x7f]$", cur) else " ")
        if cur and len(cur) + len(joiner) + len(piece) > max_chars:
            passages.append(cur)
            cur = piece
        else:
            cur = cur + joiner + piece if cur else piece
    if cur:
        passages.append(cur)
    return passages


def synth_prompt(passage: str, n: int, language: str = "ja") -> str:
    """The instruction that asks a model for ``n`` pairs about ``passage``."""
    if language not in SYNTH_INSTRUCTIONS:
        raise ValueError(f"language must be one of {', '.join(SYNTH_INSTRUCTIONS)}, not {language!r}")
    return SYNTH_INSTRUCTIONS[language].format(n=n, passage=passage.strip())


def _from_json_obj(obj: Any) -> QAPair | None:
    if not isinstance(obj, dict):
        return None
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    for qk, ak in _JSON_KEYS:
        q, a = lowered.get(qk), lowered.get(ak)
        if isinstance(q, str) and isinstance(a, str):
            return QAPair(q.strip(), a.strip())
    return None


def _parse_json(text: str) -> list[QAPair]:
    pairs: list[QAPair] = []
    stripped = re.sub(r"^```(?:json|jsonl)?\s*|\s*```$", "", text.strip(), flags=re.MULTILINE)
    start = stripped.find("[")
    if start != -1:
        try:
            value, _ = json.JSONDecoder().raw_decode(stripped[start:])
            if isinstance(value, list):
                pairs = [p for p in (_from_json_obj(v) for v in value) if p]
                if pairs:
                    return pairs
        except json.JSONDecodeError:
            pass
    for line in stripped.splitlines():
        line = line.strip().rstrip(",")
        if line.startswith("{"):
            try:
                p = _from_json_obj(json.loads(line))
            except json.JSONDecodeError:
                continue
            if p:
                pairs.append(p)
    return pairs


def _parse_labelled(text: str) -> list[QAPair]:
    pairs: list[QAPair] = []
    question: list[str] | None = None
    answer: list[str] | None = None

    def flush() -> None:
        if question is not None and answer is not None:
            q, a = " ".join(question).strip(), " ".join(answer).strip()
            if q and a:
                pairs.append(QAPair(q, a))

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        mq = _Q_LABEL.match(line)
        ma = _A_LABEL.match(line) if not mq else None
        if mq:
            flush()
            rest = line[mq.end():]
            inline = _A_INLINE.search(rest)
            if inline:
                question, answer = [rest[: inline.start()]], [rest[inline.end():]]
            else:
                question, answer = [rest], None
        elif ma and question is not None:
            if answer is not None:  # a second answer label: keep the first answer, start no new pair
                answer.append(line[ma.end():])
            else:
                answer = [line[ma.end():]]
        elif answer is not None:
            answer.append(line)
        elif question is not None:
            question.append(line)
    flush()
    return pairs


def parse_qa_pairs(text: str) -> list[QAPair]:
    """Question-answer pairs in a model's output (JSON first, then labelled lines); [] when none."""
    return _parse_json(text) or _parse_labelled(text)


@dataclass
class FilterSettings:
    min_question_chars: int = 5
    max_question_chars: int = 400
    min_answer_chars: int = 1
    max_answer_chars: int = 800


def reject_reason(pair: QAPair, settings: FilterSettings) -> str | None:
    """Why a pair is unusable on its own (None when it is fine); duplicates are judged by filter_pairs."""
    q, a = pair.question.strip(), pair.answer.strip()
    if len(q) < settings.min_question_chars:
        return "question_too_short"
    if len(q) > settings.max_question_chars:
        return "question_too_long"
    if len(a) < settings.min_answer_chars:
        return "answer_too_short"
    if len(a) > settings.max_answer_chars:
        return "answer_too_long"
    nq, na = normalize_for_match(q), normalize_for_match(a)
    if not nq or not na:
        return "no_letters"
    if na == nq:
        return "answer_equals_question"
    if na in nq:
        return "answer_in_question"
    return None


def filter_pairs(pairs: Iterable[QAPair], settings: FilterSettings | None = None,
                 seen: set[str] | None = None) -> tuple[list[QAPair], Counter[str]]:
    """Keep usable, new pairs; count the rejected ones by reason. ``seen`` carries normalised questions across calls."""
    settings = settings or FilterSettings()
    seen = set() if seen is None else seen
    kept: list[QAPair] = []
    rejected: Counter[str] = Counter()
    for pair in pairs:
        reason = reject_reason(pair, settings)
        key = normalize_for_match(pair.question)
        if reason is None and key in seen:
            reason = "duplicate"
        if reason:
            rejected[reason] += 1
            continue
        seen.add(key)
        kept.append(QAPair(pair.question.strip(), pair.answer.strip()))
    return kept, rejected


@dataclass
class SynthResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def run_synth(
    documents: Sequence[Document],
    engine: Any,
    *,
    pairs_per_passage: int = 3,
    language: str = "ja",
    max_passage_chars: int = 800,
    chat: bool = False,
    params: Any = None,
    batch_size: int = 8,
    settings: FilterSettings | None = None,
) -> SynthResult:
    """Have ``engine`` write QA pairs about every passage; parse, filter, deduplicate; keep provenance."""
    from jmedllm.schema import GenerationParams

    params = params or GenerationParams(max_new_tokens=256)
    description = engine.describe() if hasattr(engine, "describe") else {}
    model = description.get("model") or description.get("model_ref") or getattr(engine, "kind", "engine")
    jobs: list[tuple[Document, int, str]] = []
    for doc in documents:
        for i, passage in enumerate(split_passages(doc.text, max_passage_chars)):
            jobs.append((doc, i, passage))
    seen: set[str] = set()
    result = SynthResult()
    rejected: Counter[str] = Counter()
    parsed_total = unparsable = 0
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start : start + batch_size]
        prompts = [synth_prompt(p, pairs_per_passage, language) for _, _, p in batch]
        if chat and getattr(getattr(engine, "supports", None), "chat", False):  # a chat API: messages as they are
            prompts = [[{"role": "user", "content": p}] for p in prompts]
        elif chat:
            prompts = [engine.format_chat([{"role": "user", "content": p}]) for p in prompts]
        for (doc, idx, _), completion in zip(batch, engine.generate(prompts, params)):
            pairs = parse_qa_pairs(completion.text)
            parsed_total += len(pairs)
            unparsable += not pairs
            kept, why = filter_pairs(pairs, settings, seen)
            rejected.update(why)
            for k, pair in enumerate(kept):
                result.records.append({
                    "id": f"{doc.id}#p{idx}q{k}",
                    "instruction": pair.question,
                    "output": pair.answer,
                    "source": {"kind": "synth", "document_id": doc.id, "document_file": doc.source,
                               "document_line": doc.line, "passage": idx, "model": model,
                               "language": language},
                })
    result.stats = {
        "documents": len(documents),
        "passages": len(jobs),
        "generations": len(jobs),
        "generations_without_pairs": unparsable,
        "parsed_pairs": parsed_total,
        "kept_pairs": len(result.records),
        "rejected": dict(sorted(rejected.items())),
        "pairs_per_passage": pairs_per_passage,
        "language": language,
        "max_passage_chars": max_passage_chars,
        "model": description or {"kind": getattr(engine, "kind", None)},
        "generation": {"max_new_tokens": params.max_new_tokens, "temperature": params.temperature,
                       "top_p": params.top_p, "seed": params.seed},
    }
    return result


def write_synth(result: SynthResult, path: Any) -> tuple[Any, Any]:
    """Write the records as JSONL and the counts next to them (``<name>.stats.json``)."""
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for rec in result.records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    stats_path = path.with_name(path.stem + ".stats.json")
    stats_path.write_text(json.dumps(result.stats, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    return path, stats_path
