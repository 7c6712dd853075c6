"""Sentences for the synthetic corpus, taken from the Debian ``fortunes`` package.

A fortune file is a list of quotations separated by lines holding only ``%``. Each
quotation, without its attribution lines (``-- Author``), is split into sentences; a
sentence is kept when it is 5-16 words of plain letters (apostrophes and hyphens inside
words, commas between them), starts with a capital, ends with ``.``, ``?`` or ``!``, has
no all-capital word but "I" (acronyms are spelt out differently by each synthesizer), no
word without a vowel (text-speak) and does not end in an abbreviation. Duplicates
(ignoring case) are dropped; the order is that of :data:`FORTUNE_CATEGORIES`, then of
the files, so the list is the same on every machine with the same ``fortunes`` version
(Debian 12's 1:1.99.1-7.3 gives 6,9xx sentences).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from speechrep.errors import DataError

__all__ = ["FORTUNE_CATEGORIES", "FORTUNES_DIR", "fortune_sentences", "is_plain_sentence"]

#: Where the Debian ``fortunes`` package installs its files.
FORTUNES_DIR = Path("/usr/share/games/fortunes")

#: Categories used: general-audience quotations. Left out: those about ethnic groups,
#: men/women, drugs and politics (may offend), and the computing / fan ones (linux, perl,
#: computers, debian, startrek, zippy, pratchett, knghtbrd, ...: jargon, code, names).
FORTUNE_CATEGORIES: tuple[str, ...] = (
    "cookie",
    "definitions",
    "education",
    "food",
    "fortunes",
    "goedel",
    "humorists",
    "kids",
    "law",
    "literature",
    "love",
    "magic",
    "medicine",
    "miscellaneous",
    "paradoxum",
    "people",
    "pets",
    "platitudes",
    "science",
    "songs-poems",
    "sports",
    "tao",
    "wisdom",
    "work",
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SHAPE = re.compile(r"[A-Z][A-Za-z ,'-]*[A-Za-z][.!?]")
_WORD = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")
_VOWEL = re.compile(r"[aeiouyAEIOUY]")
_ABBREVIATIONS = frozenset("mr mrs ms dr st jr sr vs etc prof gen rev no co inc ltd".split())


def is_plain_sentence(sentence: str, *, min_words: int = 5, max_words: int = 16) -> bool:
    """Whether ``sentence`` passes the filter described in the module docstring."""
    if not _SHAPE.fullmatch(sentence):
        return False
    words = sentence[:-1].replace(",", " ").split()
    if not min_words <= len(words) <= max_words:
        return False
    if words[-1].lower() in _ABBREVIATIONS:
        return False
    return all(_WORD.fullmatch(w) and _VOWEL.search(w) and (w == "I" or len(w) == 1 or not w.isupper()) for w in words)


def fortune_sentences(
    categories: Sequence[str] = FORTUNE_CATEGORIES,
    *,
    root: str | Path = FORTUNES_DIR,
    min_words: int = 5,
    max_words: int = 16,
) -> list[str]:
    """Unique plain sentences of the given fortune categories, in a deterministic order.

    Parameters
    ----------
    categories : fortune file names under ``root``.
    root : the fortunes directory.
    min_words, max_words : sentence length range, in words.

    Returns
    -------
    list of sentences (original case and punctuation, as the synthesizers read them).

    Raises
    ------
    DataError
        A category file is missing (naming the Debian package ``fortunes``).
    """
    root = Path(root)
    seen: set[str] = set()
    sentences: list[str] = []
    for category in categories:
        path = root / category
        if not path.is_file():
            raise DataError(
                "fortune file not found (install the Debian package 'fortunes')", path=path, field="categories"
            )
        text = path.read_text(encoding="utf-8", errors="replace")
        for quotation in re.split(r"^%$", text, flags=re.MULTILINE):
            lines = [line for line in quotation.splitlines() if not line.strip().startswith("--")]
            for sentence in _SENTENCE_END.split(" ".join(" ".join(lines).split())):
                key = sentence.lower()
                if key not in seen and is_plain_sentence(sentence, min_words=min_words, max_words=max_words):
                    seen.add(key)
                    sentences.append(sentence)
    return sentences
