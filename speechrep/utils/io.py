"""Atomic output: write to a temporary sibling, then rename.

A reader never sees a half-written file or directory: either the old content, or the
complete new one. Interrupted writes leave only ``*.tmp*`` siblings, which a rerun
removes or overwrites.

A symlink at the output is followed: the file it points to is replaced, the link stays (as
with a shell's ``>``). A target that is not a regular file (``/dev/null``, a FIFO, a
terminal) is written directly: renaming over it would replace the device node.

Commands that write a whole directory go through :func:`output_dir`, which refuses to
replace anything that is not a previous output of the same command (each output carries
an :data:`OUTPUT_MARKER` file naming the command) and never an input of the command.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from speechrep.errors import SpeechrepError

#: File inside every directory written by :func:`output_dir`: the command that wrote it.
OUTPUT_MARKER = ".speechrep_output"


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open ``path`` for writing through a temp file renamed into place on success.

    On an exception the temp file is removed and ``path`` is left untouched. A symlink is
    followed (its target is replaced); a device node or FIFO is written in place.

    Raises
    ------
    SpeechrepError
        ``path`` is an existing directory.
    """
    path = _follow_link(Path(path))
    if path.is_dir():
        raise SpeechrepError("is a directory; give a file name", path=path)
    if path.exists() and not path.is_file():
        # a device node or FIFO: there is nothing to keep atomic, and a rename would
        # replace the node itself with a regular file
        try:
            with open(path, mode, **kwargs) as f:
                yield f
        except BaseException as e:  # /dev/full reports ENOSPC when the buffer is flushed on close
            _raise_naming(e, path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600; give the file the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _raise_naming(e, path)


def _follow_link(path: Path) -> Path:
    """``path`` with symlinks resolved, so that a rename replaces the link's target, not the link."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, Paths: the usual non-JSON values in results
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Build a directory under a temporary name; rename it to ``path`` on success.

    Yields the temporary directory to fill. If ``path`` exists and ``overwrite`` is true it
    is replaced only once the new content is complete. A symlink at ``path`` is followed.
    Commands use :func:`output_dir`, which checks what ``path`` holds first.
    """
    path = _follow_link(Path(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            if not overwrite:
                raise FileExistsError(path)
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _raise_naming(e, path)


def _raise_naming(exc: BaseException, path: Path) -> None:
    """Re-raise ``exc``; an OSError without a file name (a failed ``write()`` on a full disk
    reports none) gets ``path``, so the user learns which output could not be written."""
    if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    raise exc


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def check_output_dir(
    path: str | Path,
    *,
    command: str,
    field: str,
    inputs: Iterable[str | Path | None] = (),
    containers: Iterable[str | Path | None] = (),
    force: bool = False,
    resume: bool = False,
) -> Path:
    """Refuse an output directory whose replacement would lose data; return it resolved.

    Parameters
    ----------
    path : output directory of ``speechrep <command>``.
    command : the command, as written in :data:`OUTPUT_MARKER` (``extract``, ``report``...).
    field : the option or argument that named ``path`` (for the error message).
    inputs : files and directories the command reads; ``path`` may be neither one of them,
        nor inside one, nor hold one. ``None`` entries are skipped.
    containers : directories the command reads that conventionally hold its outputs (an
        experiment directory): ``path`` may lie inside one, but may not be one or hold one.
    force : replace a previous output of the same command (otherwise refused).
    resume : the command adds to a previous output of its own (nothing is replaced), so
        one is accepted without ``force``.

    Raises
    ------
    SpeechrepError
        ``path`` is an input, lies inside one or holds one; is (or lies under) an existing
        file; is a
        non-empty directory that is not an output of ``command`` (whatever ``force``
        says: it may be anybody's data); or is a previous output and ``force`` is false.
    """
    real = _real(path)
    for kind, entries in (("input", inputs), ("container", containers)):
        for entry in entries:
            if entry is None:
                continue
            src = _real(entry)
            if _inside(src, real):
                what = "is" if src == real else "holds"
                raise SpeechrepError(f"{what} an input of this command ({entry}); choose another output directory",
                                     path=path, field=field)
            if kind == "input" and _inside(real, src):
                raise SpeechrepError(f"lies inside an input of this command ({entry}); choose another output directory",
                                     path=path, field=field)
    if real.exists() and not real.is_dir():
        raise SpeechrepError("exists and is not a directory; give a directory name", path=path, field=field)
    above = next(p for p in real.parents if p.exists())
    if not above.is_dir():
        raise SpeechrepError(f"lies under {above}, which is not a directory", path=path, field=field)
    if real.is_dir() and any(real.iterdir()):
        if read_output_marker(real) != command:
            raise SpeechrepError(
                f"is not empty and is not an output of 'speechrep {command}' (no {OUTPUT_MARKER} naming it); "
                "choose a new or empty directory", path=path, field=field)
        if not force and not resume:
            raise SpeechrepError(f"holds an earlier output of 'speechrep {command}'; pass --force to replace it",
                                 path=path, field=field)
    return real


def read_output_marker(path: str | Path) -> str | None:
    """The command named by ``path/OUTPUT_MARKER``, or None where there is none."""
    marker = Path(path) / OUTPUT_MARKER
    try:
        return marker.read_text(encoding="utf-8").strip() if marker.is_file() else None
    except (OSError, UnicodeDecodeError):
        return None


def write_output_marker(path: str | Path, command: str) -> None:
    """Mark the directory ``path`` as an output of ``speechrep <command>``."""
    atomic_write_text(Path(path) / OUTPUT_MARKER, command + "\n")


@contextlib.contextmanager
def output_dir(path: str | Path, *, command: str, field: str, force: bool = False,
               inputs: Iterable[str | Path | None] = (), containers: Iterable[str | Path | None] = ()) -> Iterator[Path]:
    """:func:`atomic_dir` for a command's output directory, after :func:`check_output_dir`.

    Yields the temporary directory to fill; the marker naming ``command`` is written into
    it, so a rerun knows the directory as this command's output.
    """
    real = check_output_dir(path, command=command, field=field, inputs=list(inputs), containers=list(containers),
                            force=force)
    with atomic_dir(real) as tmp:
        write_output_marker(tmp, command)
        yield tmp


def check_output_file(path: str | Path, *, field: str, inputs: Iterable[str | Path | None] = ()) -> Path:
    """Refuse an output file that is a directory or one of the command's inputs.

    Meant to be called before the work, so that a bad ``--out`` fails at once rather than
    after minutes of computing. Returns ``path``.

    Raises
    ------
    SpeechrepError
        ``path`` is an existing directory, or the same file as one of ``inputs``.
    """
    path = Path(path)
    if path.is_dir():
        raise SpeechrepError("is a directory; give a file name", path=path, field=field)
    real = _real(path)
    for entry in inputs:
        if entry is not None and _real(entry) == real:
            raise SpeechrepError(f"is an input of this command ({entry}); choose another output file",
                                 path=path, field=field)
    return path
