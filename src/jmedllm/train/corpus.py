"""Continued-pretraining corpora: read documents, tokenise them, pack them into blocks.

Readers (chosen by file suffix; a folder is read recursively, files in sorted order):

- ``.txt`` / ``.md`` / ``.text``: plain UTF-8 text. ``text_unit`` says what a document is:
  the whole ``file``, each ``paragraph`` (blank-line separated; the default) or each ``line``.
- ``.jsonl`` / ``.json``: JSON lines, one document per line, its text under ``text_field``
  (``id`` is used as the document id when present).
- ``.xml``: the MedTxt corpus (NTCIR-16 Real-MedNLP): each ``<article id=.. title=..>`` is one
  document, the title (when not empty) as its first line.

Every document keeps its provenance (file, starting line, id) so that the contamination guard
and error messages can name it. Bad input raises CorpusError naming file, line and field.
Documents whose text is empty are not trained on; they are listed in ``Corpus.empty`` and in
the stats written next to the model, never dropped silently.

Packing (``pack_documents``): each document is tokenised as the model sees text at inference
(the tokenizer's own special tokens, e.g. a BOS for Llama) and followed by EOS; the token
streams are concatenated and cut into blocks of exactly ``block_size`` tokens, a document
longer than the remaining room continuing in the next block. Only the **last** block can be
shorter: ``last_block="keep"`` (default) trains on it as a shorter block (the collator pads it
or, padding-free, needs no padding), ``"drop"`` leaves its tokens out and records how many.
For each block the lengths of its document pieces (``seq_lengths``) are kept so that the
trainer can reset position ids at document starts and keep documents from attending to each
other (``isolate_documents``).
"""

from __future__ import annotations

import json
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

TEXT_SUFFIXES = (".txt", ".md", ".text")
JSONL_SUFFIXES = (".jsonl", ".json")
XML_SUFFIXES = (".xml",)
KNOWN_SUFFIXES = TEXT_SUFFIXES + JSONL_SUFFIXES + XML_SUFFIXES


class CorpusError(ValueError):
    """A corpus file that cannot be read as asked; the message names file, line and field."""


@dataclass(frozen=True)
class Document:
    """One training document with its provenance."""

    id: str
    text: str
    source: str  # the file it came from
    line: int | None = None  # 1-based line where it starts, when the format has lines


@dataclass
class Corpus:
    """Documents read from files, plus the empty ones that were left out (with their place)."""

    documents: list[Document] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)  # "file:line" or "file#id" of empty documents
    files: list[Path] = field(default_factory=list)


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CorpusError(f"{path}:{line}: not valid UTF-8 (byte {exc.start})") from None


def read_text_file(path: str | Path, unit: str = "paragraph") -> Corpus:
    """Plain text: one document per file, per blank-line separated paragraph, or per line."""
    path = Path(path)
    text = _decode(path)
    corpus = Corpus(files=[path])
    if unit == "file":
        if text.strip():
            corpus.documents.append(Document(id=path.name, text=text.strip(), source=str(path), line=1))
        else:
            corpus.empty.append(f"{path}:1")
        return corpus
    if unit not in ("paragraph", "line"):
        raise CorpusError(f"{path}: text_unit must be file, paragraph or line, not {unit!r}")
    lines = text.splitlines()
    if unit == "line":
        for i, line in enumerate(lines, 1):
            if line.strip():
                corpus.documents.append(Document(id=f"{path.name}:{i}", text=line.strip(), source=str(path), line=i))
        return corpus
    start, buf = None, []
    for i, line in enumerate(lines + [""], 1):
        if line.strip():
            if start is None:
                start = i
            buf.append(line.rstrip())
        elif buf:
            corpus.documents.append(Document(id=f"{path.name}:{start}", text="\n".join(buf).strip(),
                                             source=str(path), line=start))
            start, buf = None, []
    return corpus


def read_jsonl(path: str | Path, text_field: str = "text") -> Corpus:
    """JSON lines with the document text under ``text_field`` (a dotted path like ``meta.body`` works)."""
    path = Path(path)
    corpus = Corpus(files=[path])
    for i, line in enumerate(_decode(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{i}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise CorpusError(f"{path}:{i}: expected a JSON object, got {type(obj).__name__}")
        value: Any = obj
        for part in text_field.split("."):
            if not isinstance(value, dict) or part not in value:
                keys = ", ".join(sorted(obj)) or "none"
                raise CorpusError(f"{path}:{i}: field {text_field!r} missing (fields: {keys}); "
                                  "set corpus.text_field")
            value = value[part]
        if not isinstance(value, str):
            raise CorpusError(f"{path}:{i}: field {text_field!r} must be a string, got {type(value).__name__}")
        doc_id = obj.get("id")
        doc_id = str(doc_id) if isinstance(doc_id, (str, int)) and str(doc_id) else f"{path.name}:{i}"
        if value.strip():
            corpus.documents.append(Document(id=doc_id, text=value.strip(), source=str(path), line=i))
        else:
            corpus.empty.append(f"{path}:{i}")
    return corpus


def read_medtxt(path: str | Path) -> Corpus:
    """MedTxt XML (``<root><articles><article id=.. title=..>text</article>``): one document per article."""
    path = Path(path)
    corpus = Corpus(files=[path])
    parser = xml.parsers.expat.ParserCreate("utf-8")
    seen: dict[str, int] = {}
    state: dict[str, Any] = {"article": None, "depth": 0}

    def start(name: str, attrs: dict[str, str]) -> None:
        line = parser.CurrentLineNumber
        if state["article"] is not None:
            state["depth"] += 1  # markup inside an article: keep its text, ignore the tag
            return
        if name != "article":
            return
        art_id = attrs.get("id")
        if not art_id:
            raise CorpusError(f"{path}:{line}: <article> without an id attribute")
        if art_id in seen:
            raise CorpusError(f"{path}:{line}: article id {art_id!r} repeats the one at line {seen[art_id]}")
        seen[art_id] = line
        state["article"] = {"id": art_id, "title": attrs.get("title", ""), "line": line, "parts": []}

    def end(name: str) -> None:
        art = state["article"]
        if art is None:
            return
        if state["depth"]:
            state["depth"] -= 1
            return
        body = "\n".join(s.strip() for s in "".join(art["parts"]).splitlines() if s.strip())
        title = art["title"].strip()
        text = f"{title}\n{body}" if title and body else (title or body)
        ident = f"{path.name}#{art['id']}"
        if text:
            corpus.documents.append(Document(id=ident, text=text, source=str(path), line=art["line"]))
        else:
            corpus.empty.append(ident)
        state["article"] = None

    def chars(data: str) -> None:
        if state["article"] is not None:
            state["article"]["parts"].append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(path.read_bytes(), True)
    except xml.parsers.expat.ExpatError as exc:
        raise CorpusError(f"{path}:{exc.lineno}: invalid XML ({xml.parsers.expat.errors.messages[exc.code]})") from None
    if not seen:
        raise CorpusError(f"{path}: no <article> elements: not a MedTxt XML file")
    return corpus


def corpus_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files behind ``paths``: files as given, folders searched recursively for known suffixes."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in KNOWN_SUFFIXES)
            if not found:
                raise CorpusError(f"{p}: folder holds no {', '.join(KNOWN_SUFFIXES)} files")
            out.extend(found)
        elif p.is_file():
            if p.suffix.lower() not in KNOWN_SUFFIXES:
                raise CorpusError(f"{p}: unknown corpus file type {p.suffix!r} (known: {', '.join(KNOWN_SUFFIXES)})")
            out.append(p)
        else:
            raise CorpusError(f"{p}: no such file or folder")
    return out


def read_corpus(paths: Iterable[str | Path], *, text_field: str = "text", text_unit: str = "paragraph") -> Corpus:
    """Read every document under ``paths`` (see the module docstring for formats)."""
    total = Corpus()
    for f in corpus_files(paths):
        suffix = f.suffix.lower()
        if suffix in TEXT_SUFFIXES:
            part = read_text_file(f, text_unit)
        elif suffix in JSONL_SUFFIXES:
            part = read_jsonl(f, text_field)
        else:
            part = read_medtxt(f)
        total.documents.extend(part.documents)
        total.empty.extend(part.empty)
        total.files.extend(part.files)
    if not total.documents:
        raise CorpusError(f"no non-empty documents in {', '.join(map(str, total.files)) or 'the given paths'}")
    return total


# -- tokenising and packing ---------------------------------------------------------------------


def tokenize_documents(documents: Sequence[Document], tokenizer: Any, batch_size: int = 256) -> list[list[int]]:
    """Token ids of each document as the model reads text (its own special tokens) followed by EOS."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise CorpusError("the tokenizer has no EOS token: documents could not be separated")
    out: list[list[int]] = []
    for i in range(0, len(documents), batch_size):
        texts = [d.text for d in documents[i : i + batch_size]]
        for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]:
            ids = list(ids)
            if not ids or ids[-1] != eos:
                ids.append(eos)
            out.append(ids)
    return out


@dataclass(frozen=True)
class PackedCorpus:
    """Fixed-length training blocks and, per block, the lengths of the document pieces in it."""

    blocks: list[list[int]]
    seq_lengths: list[list[int]]
    block_size: int
    n_documents: int
    n_tokens: int  # tokens of all documents, EOS included
    dropped_tokens: int  # only with last_block="drop"
    split_documents: int  # documents that continue from one block into the next

    def stats(self) -> dict[str, Any]:
        return {
            "documents": self.n_documents,
            "tokens": self.n_tokens,
            "blocks": len(self.blocks),
            "block_size": self.block_size,
            "last_block_tokens": len(self.blocks[-1]) if self.blocks else 0,
            "dropped_tokens": self.dropped_tokens,
            "documents_split_across_blocks": self.split_documents,
        }


def pack_documents(token_lists: Sequence[Sequence[int]], block_size: int, last_block: str = "keep") -> PackedCorpus:
    """Concatenate the documents' tokens and cut them into blocks of ``block_size``.

    >>> p = pack_documents([[1, 2, 3], [4, 5], [6, 7, 8, 9]], 4)
    >>> p.blocks, p.seq_lengths
    ([[1, 2, 3, 4], [5, 6, 7, 8], [9]], [[3, 1], [1, 3], [1]])
    """
    if block_size < 2:
        raise ValueError(f"block_size must be at least 2, got {block_size}")
    if last_block not in ("keep", "drop"):
        raise ValueError(f"last_block must be 'keep' or 'drop', not {last_block!r}")
    blocks: list[list[int]] = []
    lengths: list[list[int]] = []
    cur: list[int] = []
    cur_len: list[int] = []
    split = 0
    for ids in token_lists:
        ids = list(ids)
        pieces = 0
        while ids:
            room = block_size - len(cur)
            piece, ids = ids[:room], ids[room:]
            cur.extend(piece)
            cur_len.append(len(piece))
            pieces += 1
            if len(cur) == block_size:
                blocks.append(cur)
                lengths.append(cur_len)
                cur, cur_len = [], []
        split += pieces > 1
    dropped = 0
    if cur:
        if last_block == "keep":
            blocks.append(cur)
            lengths.append(cur_len)
        else:
            dropped = len(cur)
    return PackedCorpus(
        blocks=blocks,
        seq_lengths=lengths,
        block_size=block_size,
        n_documents=len(token_lists),
        n_tokens=sum(len(t) for t in token_lists),
        dropped_tokens=dropped,
        split_documents=split,
    )
