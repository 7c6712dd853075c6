"""Reading the text files users write by hand (pairs files, alignments)."""

from __future__ import annotations

from pathlib import Path

from speechrep.errors import DataError

__all__ = ["read_utf8"]


def read_utf8(path: str | Path) -> str:
    """The content of text file ``path``, decoded as UTF-8.

    Raises
    ------
    DataError
        The file is not valid UTF-8 (a Latin-1 or UTF-16 export, a binary file): the
        message names the file and the line of the first undecodable byte.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        lineno = raw.count(b"\n", 0, e.start) + 1
        err = DataError(
            f"line {lineno}: not valid UTF-8 (byte {raw[e.start:e.start + 1]!r}; save the file as UTF-8)", path=path
        )
        err.field = f"line {lineno}"
        raise err from None
