"""The ``speechrep`` command line.

One command = parse options, call one library function, print. Each command group lives
in its own module here and heavy imports (torch, numba kernels) happen inside the
command functions so that ``speechrep --help`` stays fast.

User errors (:class:`speechrep.errors.SpeechrepError`) are printed as one line
``error: <file>: <field>: <message>`` with exit status 1, never as a traceback. So are
outputs that cannot be written (full disk, file-size limit, no permission, read-only file
system, a path through a regular file): ``error: <file>: <reason>``; the atomic writers
have already removed their temporary files, so nothing half-written is left.
"""

from __future__ import annotations

import errno
import sys

import typer

from speechrep import __version__
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
for _module in (_corpus, _eval_vc, _recipe_tools, _train, _extract, _units, _convert, _report, _sidetasks):
    _module.register(app)


#: OSErrors that are the user's environment, not a bug: reported in one line.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``speechrep`` console script."""
    try:
        app(args=argv, prog_name="speechrep")
    except SpeechrepError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        if e.errno not in _WRITE_ERRNOS or e.filename is None:
            raise
        print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
