"""Sequential prose: the Python documentation that Debian ships (``python3.11-doc``).

A *document* is one HTML page (or a plain ``.txt`` file); it holds *sections*, each a
heading and its paragraphs; a paragraph splits into sentences and a sentence into
tokens. Train and test sets are split by document, so no page contributes to both.

:func:`prepare_pydocs` writes ``train.jsonl`` / ``test.jsonl`` (one document per line:
``{"doc": relative path, "sections": [{"heading": str, "paragraphs": [str, ...]}]}``),
the data contract the Quick Thought and seq2seq2seq recipes read with
:func:`read_documents`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from speechrep.errors import DataError

__all__ = [
    "DEFAULT_ROOT",
    "Section",
    "Document",
    "parse_html",
    "parse_text",
    "read_source",
    "prepare_pydocs",
    "read_documents",
    "split_sentences",
    "tokenize",
    "Vocabulary",
]

DEFAULT_ROOT = Path("/usr/share/doc/python3.11/html")
#: Subdirectories of the HTML tree with prose (the indexes and the C API are skipped).
DEFAULT_SUBDIRS = ("tutorial", "library", "howto", "reference", "faq", "using", "whatsnew")


@dataclass
class Section:
    """A heading and the paragraphs under it (whitespace-normalised text)."""

    heading: str
    paragraphs: list[str] = field(default_factory=list)


@dataclass
class Document:
    """One page: its path relative to the corpus root and its sections."""

    doc: str
    sections: list[Section]

    def paragraphs(self) -> list[str]:
        """All paragraphs in order."""
        return [p for s in self.sections for p in s.paragraphs]


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class _SphinxText(HTMLParser):
    """Collect headings and ``<p>`` paragraphs of the main body of a Sphinx page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = [Section("")]
        self._main_depth = 0  # > 0 inside <div role="main">
        self._div_depth = 0
        self._heading: list[str] | None = None
        self._para: list[str] | None = None
        self._skip_tag: str | None = None  # tag of a skipped region (permalink, note title, toc)
        self._skip_depth = 0  # open elements of that tag inside the region

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "div":
            self._div_depth += 1
            if self._main_depth == 0 and a.get("role") == "main":
                self._main_depth = self._div_depth
        if not self._main_depth:
            return
        if self._skip_tag is not None:
            self._skip_depth += tag == self._skip_tag
            return
        cls = a.get("class") or ""
        # permalink anchors, admonition titles ("Note") and tables of contents are not prose
        if (tag == "a" and "headerlink" in cls) or (tag == "p" and "admonition-title" in cls) or tag == "nav":
            self._skip_tag, self._skip_depth = tag, 1
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._heading = []
        elif tag == "p" and self._heading is None:
            self._para = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            if self._div_depth == self._main_depth:
                self._main_depth = 0
            self._div_depth -= 1
        if not self._main_depth:
            return
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth -= 1
                if self._skip_depth == 0:
                    self._skip_tag = None
            return
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6") and self._heading is not None:
            self.sections.append(Section(_clean("".join(self._heading))))
            self._heading = None
        elif tag == "p" and self._para is not None:
            text = _clean("".join(self._para))
            if text:
                self.sections[-1].paragraphs.append(text)
            self._para = None

    def handle_data(self, data: str) -> None:
        if self._skip_tag is not None:
            return
        if self._heading is not None:
            self._heading.append(data)
        elif self._para is not None:
            self._para.append(data)


def _read_text(path: Path) -> str:
    """UTF-8 text of a file; empty or undecodable files raise :class:`DataError`."""
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError("file is empty", path=path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (invalid byte at offset {e.start})", path=path) from None


def parse_html(text: str) -> list[Section]:
    """Sections of a Sphinx HTML page (only the ``role="main"`` body; empty sections dropped)."""
    p = _SphinxText()
    p.feed(text)
    p.close()
    return [s for s in p.sections if s.paragraphs]


def parse_text(text: str) -> list[Section]:
    """Sections of a plain-text file: paragraphs are separated by blank lines and a
    paragraph that is one line starting with ``#`` is a heading."""
    sections = [Section("")]
    for block in re.split(r"\n\s*\n", text):
        block = block.strip()
        if not block:
            continue
        if block.startswith("#") and "\n" not in block:
            sections.append(Section(_clean(block.lstrip("#"))))
        else:
            sections[-1].paragraphs.append(_clean(block))
    return [s for s in sections if s.paragraphs]


def _parse(path: Path) -> list[Section]:
    text = _read_text(path)
    return parse_html(text) if path.suffix in (".html", ".htm") else parse_text(text)


def read_source(path: str | Path, *, root: str | Path | None = None) -> Document:
    """Read one ``.html`` or ``.txt`` file into a :class:`Document`.

    Raises
    ------
    DataError
        Empty file, non-UTF-8 bytes, or no paragraph of text.
    """
    path = Path(path)
    sections = _parse(path)
    if not sections:
        raise DataError("no paragraph of text found", path=path)
    name = str(path.relative_to(root)) if root is not None else path.name
    return Document(name, sections)


def _sources(root: Path, subdirs: Sequence[str]) -> list[Path]:
    if not root.is_dir():
        raise DataError("corpus directory not found (Debian package python3.11-doc?)", path=root)
    dirs = [root / s for s in subdirs] if subdirs else [root]
    files = sorted(p for d in dirs if d.is_dir() for p in d.rglob("*") if p.suffix in (".html", ".htm", ".txt"))
    if not files:
        raise DataError(f"no .html or .txt files under {', '.join(str(d) for d in dirs)}", path=root)
    return files


def prepare_pydocs(
    out_dir: str | Path,
    *,
    root: str | Path = DEFAULT_ROOT,
    subdirs: Sequence[str] = DEFAULT_SUBDIRS,
    max_docs: int | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, int]:
    """Parse the pages under ``root/<subdir>`` and write ``train.jsonl`` / ``test.jsonl``.

    Pages are shuffled with ``seed`` and the first ``round(test_fraction * N)`` (at least
    one) form the test set. With ``max_docs`` only that many pages (the first after the
    shuffle) are read. Pages without any paragraph (tables of contents) are skipped and
    counted; an empty or non-UTF-8 file stops the run with a :class:`DataError` naming it.

    Returns
    -------
    ``{"train": documents, "test": documents, "paragraphs": total, "skipped": pages}``.
    """
    from speechrep.utils.io import atomic_open

    root = Path(root)
    files = _sources(root, subdirs)
    order = np.random.default_rng(seed).permutation(len(files))
    files = [files[i] for i in order[: max_docs or len(files)]]
    docs = []
    for f in files:
        sections = _parse(f)
        if sections:
            docs.append(Document(str(f.relative_to(root)), sections))
    skipped = len(files) - len(docs)
    if len(docs) < 2:
        raise DataError(f"need at least 2 documents with text for a train/test split, found {len(docs)}", path=root)
    n_test = min(len(docs) - 1, max(1, round(test_fraction * len(docs))))
    out_dir = Path(out_dir)
    for name, part in (("test", docs[:n_test]), ("train", docs[n_test:])):
        with atomic_open(out_dir / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for d in sorted(part, key=lambda d: d.doc):
                f.write(json.dumps({"doc": d.doc, "sections": [vars(s) for s in d.sections]}, ensure_ascii=False) + "\n")
    return {"train": len(docs) - n_test, "test": n_test, "paragraphs": sum(len(d.paragraphs()) for d in docs), "skipped": skipped}


def read_documents(path: str | Path) -> list[Document]:
    """Documents of a ``train.jsonl`` / ``test.jsonl`` written by :func:`prepare_pydocs`."""
    path = Path(path)
    if not path.is_file():
        raise DataError("document file not found (run the data preparation stage)", path=path)
    docs = []
    for i, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            docs.append(Document(d["doc"], [Section(s["heading"], list(s["paragraphs"])) for s in d["sections"]]))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(f"line {i}: not a document record ({e})", path=path) from None
    return docs


# A sentence ends at . ! or ? followed by space and an upper-case letter, a digit or a
# quote; "e.g. the" and "i.e. it" stay whole because a lower-case word follows.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_TOKEN = re.compile(r"[a-z0-9_]+|[^\sa-z0-9_]")


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of a paragraph (rule-based; see ``_SENTENCE_END``)."""
    return [s for s in (t.strip() for t in _SENTENCE_END.split(paragraph)) if s]


def tokenize(text: str) -> list[str]:
    """Lower-cased word, number and punctuation tokens."""
    return _TOKEN.findall(text.lower())


class Vocabulary:
    """Token <-> index map with ``<pad>`` = 0, ``<unk>`` = 1, ``<bos>`` = 2, ``<eos>`` = 3.

    Parameters
    ----------
    tokens : the vocabulary after the specials, in index order.
    """

    SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
    PAD, UNK, BOS, EOS = 0, 1, 2, 3

    def __init__(self, tokens: Iterable[str]):
        self.itos = list(self.SPECIALS) + [t for t in tokens if t not in self.SPECIALS]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(cls, texts: Iterable[Sequence[str]], *, max_size: int = 5000, min_count: int = 2) -> "Vocabulary":
        """The ``max_size`` most frequent tokens seen at least ``min_count`` times (ties by token)."""
        counts = Counter(t for toks in texts for t in toks)
        kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        return cls(kept[:max_size])

    def encode(self, tokens: Sequence[str], *, max_len: int | None = None, source: str = "<text>") -> list[int]:
        """Indices of ``tokens`` (unknown -> ``<unk>``).

        Raises
        ------
        DataError
            More than ``max_len`` tokens (the model's limit).
        """
        if max_len is not None and len(tokens) > max_len:
            head = " ".join(tokens[:8])
            raise DataError(f"sentence of {len(tokens)} tokens exceeds the model's limit of {max_len}: '{head} ...'", path=source, field="max_len")
        return [self.stoi.get(t, self.UNK) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids``, stopping at ``<eos>`` and skipping ``<pad>``/``<bos>``."""
        out = []
        for i in ids:
            if i == self.EOS:
                break
            if i not in (self.PAD, self.BOS):
                out.append(self.itos[i])
        return out

    def pad(self, seqs: Sequence[Sequence[int]], *, length: int | None = None) -> np.ndarray:
        """(N, L) int64 array of the sequences right-padded with ``<pad>``."""
        length = length or max((len(s) for s in seqs), default=1)
        out = np.full((len(seqs), max(length, 1)), self.PAD, dtype=np.int64)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = s[:length]
        return out
