"""The ``speechrep`` command line.

One command = parse options, call one library function, print. Each command group lives
in its own module here and heavy imports (torch, numba kernels) happen inside the
command functions so that ``speechrep --help`` stays fast.

User errors (:class:`speechrep.errors.SpeechrepError`) are printed as one line
``error: <file>: <field>: <message>`` with exit status 1, never as a traceback. So are
outputs that cannot be written (full disk, file-size limit, no permission, read-only file
system, a path through a regular file): ``error: <file>: <reason>``; the atomic writers
have already removed their temporary files, so nothing half-written is left. Paths that
are not what a command expects (an existing file or directory in the way, a directory
given as a file, a missing file) and undecodable text get the same one line, and Ctrl-C
prints ``interrupted`` and exits 130 (the shell convention for SIGINT).
"""

from __future__ import annotations

import errno
import sys

import typer

from speechrep import __version__
from speechrep.cli import align as _align
from speechrep.cli import data as _data
from speechrep.cli import eval as _eval
from speechrep.cli import features as _features
from speechrep.cli import convert as _convert
from speechrep.cli import corpus as _corpus
from speechrep.cli import eval_vc as _eval_vc
from speechrep.cli import extract as _extract
from speechrep.cli import recipe_tools as _recipe_tools
from speechrep.cli import report as _report
from speechrep.cli import sidetasks as _sidetasks
from speechrep.cli import train as _train
from speechrep.cli import units as _units
from speechrep.errors import SpeechrepError

app = typer.Typer(
    name="speechrep",
    help="Self-supervised speech representations: features, CPC/DIM training, discrete units, "
    "voice conversion and phone-discovery evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"speechrep {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """speechrep command line."""


app.add_typer(_data.app, name="data")
app.add_typer(_features.app, name="features")
app.add_typer(_eval.app, name="eval")
# Modules that add top-level commands (train, extract, units, convert) or extend a group
# (corpus adds `data make-synth` / `data prepare`, eval_vc adds `eval vc`).
for _module in (_corpus, _eval_vc, _recipe_tools, _train, _extract, _units, _convert, _report, _sidetasks, _align):
    _module.register(app)


#: OSErrors that are the user's environment or input, not a bug: reported in one line
#: naming the file. Writing: full disk, quota, file-size limit, permissions, read-only file
#: system. Paths: a missing file, a file or directory in the way, a directory given as a file
#: (or a file as a directory), a name too long, a symlink loop, a non-empty directory.
_USER_ERRNOS = {
    errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS,
    errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOENT, errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTEMPTY,
}


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` stems from a KeyboardInterrupt: Typer turns Ctrl-C into
    ``Exit(130)`` raised from the interrupt, then into ``SystemExit(130)``."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        stack += [e.__cause__, e.__context__]
    return False


def _fail(message: str, status: int = 1) -> None:
    print(message, file=sys.stderr)
    sys.exit(status)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``speechrep`` console script."""
    try:
        app(args=argv, prog_name="speechrep")
    except SystemExit as e:
        if e.code == 130 and _interrupted(e):
            _fail("interrupted", 130)
        raise
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except SpeechrepError as e:
        _fail(f"error: {e}")
    except OSError as e:
        if e.errno not in _USER_ERRNOS or e.filename is None:
            raise
        # a rename names both paths; the first is the one the user gave
        _fail(f"error: {e.filename}: {e.strerror}")
    except UnicodeDecodeError as e:
        # the decoder does not know the file; readers of user files name it themselves
        # (DataError), this is the last resort so that no traceback reaches the user
        _fail(f"error: input is not valid {e.encoding.upper()} text (byte {e.object[e.start:e.start + 1]!r} "
              f"at offset {e.start})")
