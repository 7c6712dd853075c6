"""Preparation of real corpora into Kaldi data directories: one ``prepare_<corpus>(src,
out, ...)`` per corpus, each returning a :class:`PreparedCorpus` (sets written, files
skipped and why). Output layout: :mod:`speechrep.data.corpora.common`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from speechrep.data.corpora.asterisk import prepare_asterisk
from speechrep.data.corpora.buckeye import prepare_buckeye
from speechrep.data.corpora.common import PreparedCorpus
from speechrep.data.corpora.folder import prepare_folder
from speechrep.data.corpora.librispeech import prepare_librispeech
from speechrep.data.corpora.ljspeech import prepare_ljspeech
from speechrep.data.corpora.timit import prepare_timit
from speechrep.data.corpora.vctk import prepare_vctk
from speechrep.data.corpora.zerospeech2019 import prepare_zerospeech2019
from speechrep.errors import DataError

__all__ = [
    "PREPARERS",
    "PreparedCorpus",
    "prepare",
    "prepare_asterisk",
    "prepare_buckeye",
    "prepare_folder",
    "prepare_librispeech",
    "prepare_ljspeech",
    "prepare_timit",
    "prepare_vctk",
    "prepare_zerospeech2019",
]

#: Corpus name -> preparer.
PREPARERS: dict[str, Callable[..., PreparedCorpus]] = {
    "asterisk": prepare_asterisk,
    "buckeye": prepare_buckeye,
    "folder": prepare_folder,
    "librispeech": prepare_librispeech,
    "ljspeech": prepare_ljspeech,
    "timit": prepare_timit,
    "vctk": prepare_vctk,
    "zerospeech2019": prepare_zerospeech2019,
}


def prepare(corpus: str, src: str | Path, out: str | Path, **options: Any) -> PreparedCorpus:
    """Run the preparer of ``corpus`` (a key of :data:`PREPARERS`) with ``options``.

    Raises
    ------
    DataError
        Unknown corpus, or an option the corpus does not take.
    """
    if corpus not in PREPARERS:
        raise DataError(f"unknown corpus {corpus!r} (choose from {', '.join(PREPARERS)})", field="corpus")
    import inspect

    accepted = set(inspect.signature(PREPARERS[corpus]).parameters) - {"src", "out"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise DataError(
            f"{corpus} takes no option {', '.join(unknown)} (it takes: {', '.join(sorted(accepted)) or 'none'})",
            field="options",
        )
    return PREPARERS[corpus](src, out, **options)
