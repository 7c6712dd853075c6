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
from collections.abc import Callable, Sequence
from pathlib import Path

from speechrep.errors import DataError

__all__ = [
    "FORTUNES_DIR",
    "FORTUNE_CATEGORIES",
    "NATIVE_TEXTS",
    "NO_TEXT",
    "fortune_sentences",
    "is_plain_sentence",
    "native_sentences",
]

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

#: Sentences in other languages, for the festival voices that read them: language ->
#: (Debian package, fortune files under ``FORTUNES_DIR/<language>``). Left out: computing,
#: banners, Star Trek and translated English humour (it); Slovak, kernel list and
#: computing (cs); politics, sex, religion, ethnic jokes and computing (ru). Languages
#: with festival voices but no text in Debian main (Finnish, Catalan, Hindi, Telugu,
#: Marathi) are listed in :data:`NO_TEXT`.
NATIVE_TEXTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "it": ("fortunes-it", ("definizioni", "formiche", "italia", "leggi", "luttazzi", "paolotedeschi")),
    "cs": (
        "fortunes-cs",
        (
            "chesterton", "cimrman", "citace", "citat", "guth", "hornicek", "ignac", "jerome", "josef",
            "klasik-cz", "lodge", "mikulas", "mladik", "murphy", "parafraze", "parkinson", "plihal",
            "prislovi", "skala", "stoa1", "stopar", "valka", "vodnansky", "wikiquote", "wodehouse",
            "wright", "zemeplocha",
        ),
    ),
    "ru": (
        "fortunes-ru",
        (
            "book", "citates", "conscience", "education", "ego_and_alt", "fidelity", "foolish", "freewill",
            "friendship", "future", "genious", "happy", "human_being", "innocence", "knowledge", "life",
            "life_k", "love", "success", "sympathy", "time", "truth", "truth_and_lie", "wealth", "work",
        ),
    ),
}

#: Why a language has no text (its voices are skipped and counted in ``stats.json``).
NO_TEXT = {
    language: f"no text in {name} in Debian main (no fortunes-{language} or other packaged prose)"
    for language, name in (("fi", "Finnish"), ("ca", "Catalan"), ("hi", "Hindi"), ("te", "Telugu"), ("mr", "Marathi"))
}

_NATIVE_SHAPE = re.compile(r"[^\W\d_][\w ,'-]*[^\W\d_][.!?]")
_NATIVE_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")
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
    return _collect(
        categories, Path(root), "fortunes", lambda s: is_plain_sentence(s, min_words=min_words, max_words=max_words)
    )


def native_sentences(language: str, *, root: str | Path = FORTUNES_DIR) -> list[str]:
    """Unique plain sentences in ``language`` from its Debian fortunes package.

    The filter is :func:`is_plain_sentence`'s, with letters of any alphabet, 4-16 words,
    and only sentences that festival can read in its encoding for the language
    (:data:`~speechrep.data.synth.voices.FESTIVAL_ENCODINGS`).

    Parameters
    ----------
    language : a key of :data:`NATIVE_TEXTS`.
    root : the fortunes directory (the language's files are in ``root/<language>/``).

    Raises
    ------
    DataError
        A category file is missing (naming the Debian package).
    """
    from speechrep.data.synth.voices import FESTIVAL_ENCODINGS

    package, categories = NATIVE_TEXTS[language]
    encoding = FESTIVAL_ENCODINGS.get(language, "utf-8")

    def keep(sentence: str) -> bool:
        if not _NATIVE_SHAPE.fullmatch(sentence) or not sentence[0].isupper():
            return False
        words = sentence[:-1].replace(",", " ").split()
        # all-capital words (acronyms, Roman numerals) are read inconsistently, as in English
        if not 4 <= len(words) <= 16 or not all(
            _NATIVE_WORD.fullmatch(w) and (len(w) == 1 or not w.isupper()) for w in words
        ):
            return False
        try:
            sentence.encode(encoding)
        except UnicodeEncodeError:
            return False
        return True

    return _collect(categories, Path(root) / language, package, keep)


def _collect(categories: Sequence[str], root: Path, package: str, keep: Callable[[str], bool]) -> list[str]:
    """Sentences of the fortune files ``root/<category>`` that ``keep`` accepts, deduplicated."""
    seen: set[str] = set()
    sentences: list[str] = []
    for category in categories:
        path = root / category
        if not path.is_file():
            raise DataError(
                f"fortune file not found (install the Debian package '{package}')", path=path, field="categories"
            )
        text = path.read_text(encoding="utf-8", errors="replace")
        for quotation in re.split(r"^%$", text, flags=re.MULTILINE):
            lines = [line for line in quotation.splitlines() if not line.strip().startswith("--")]
            for sentence in _SENTENCE_END.split(" ".join(" ".join(lines).split())):
                key = sentence.lower()
                if key not in seen and keep(sentence):
                    seen.add(key)
                    sentences.append(sentence)
    return sentences
