"""What the independent judges said about a wave, kept on disk (``speechrep eval vc --judge-cache``).

A recipe scores several systems against the same test voices: every ``speechrep eval vc``
enrols the same real utterances and transcribes the same sources again. With a cache
directory the speaker judge's embeddings and the word judge's transcripts are computed once.

Entries are keyed by content, not by file name: the SHA-256 of the judge's description
(package, version, model) and of the 16 kHz float32 samples the judge is given. A changed
file, another resampling or another judge version misses the cache; nothing is trusted
by name or date. Embeddings are ``.npy`` files (read without pickle), transcripts JSON
lists; each is written atomically (:func:`speechrep.utils.io.atomic_open`), so a killed run
leaves no half entry. An entry that does not read back (truncated, edited by hand) is computed again and
replaced, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from speechrep.errors import ConfigError
from speechrep.utils.io import atomic_open, atomic_write_text

log = logging.getLogger("speechrep.eval")

__all__ = ["JudgeCache"]


class JudgeCache:
    """Content-keyed cache of judge outputs under ``root`` (created on first write).

    ``root/<judge>/<key[:2]>/<key>.npy`` holds an embedding, ``.json`` a word list;
    ``<judge>`` is the judge's description made file-name safe.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError("the judges' cache must be a directory", path=self.root, field="--judge-cache")

    def _path(self, judge: str, wave: np.ndarray, suffix: str) -> Path:
        samples = np.ascontiguousarray(wave, dtype=np.float32)
        h = hashlib.sha256(judge.encode())
        h.update(b"\0")
        h.update(samples.tobytes())
        key = h.hexdigest()
        return self.root / re.sub(r"[^A-Za-z0-9._-]+", "_", judge) / key[:2] / f"{key}{suffix}"

    def _lookup(self, path: Path, read: Callable[[Path], object], write: Callable[[object, Path], None],
                compute: Callable[[], object]) -> object:
        if path.exists():
            try:
                return read(path)
            except (OSError, ValueError, EOFError) as e:
                log.warning("%s: unreadable judge cache entry (%s); computed again", path, e)
        value = compute()
        write(value, path)  # atomically
        return value

    def embedding(self, judge: str, wave: np.ndarray, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached ``compute()`` (a 1-D float array) of ``judge`` on ``wave``."""

        def read(p: Path) -> np.ndarray:
            a = np.load(p, allow_pickle=False)
            if a.ndim != 1 or not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all():
                raise ValueError(f"not a finite 1-D float array: shape {a.shape}, dtype {a.dtype}")
            return a

        def write(a: object, p: Path) -> None:
            with atomic_open(p, "wb") as f:
                np.save(f, np.asarray(a), allow_pickle=False)

        return self._lookup(self._path(judge, wave, ".npy"), read, write, compute)  # type: ignore[return-value]

    def words(self, judge: str, wave: np.ndarray, compute: Callable[[], list[str]]) -> list[str]:
        """The cached ``compute()`` (a list of words) of ``judge`` on ``wave``."""

        def read(p: Path) -> list[str]:
            w = json.loads(p.read_text())
            if not isinstance(w, list) or not all(isinstance(x, str) for x in w):
                raise ValueError("not a JSON list of words")
            return w

        def write(w: object, p: Path) -> None:
            atomic_write_text(p, json.dumps(w))

        return self._lookup(self._path(judge, wave, ".json"), read, write, compute)  # type: ignore[return-value]
