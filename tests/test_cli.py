import subprocess
import sys

import speechrep


def _run(*args):
    return subprocess.run([sys.executable, "-m", "speechrep", *args], capture_output=True, text=True)


def test_version():
    r = _run("--version")
    assert r.returncode == 0 and speechrep.__version__ in r.stdout


def test_help_on_every_command():
    from typer.main import get_command

    from speechrep.cli import app

    root = get_command(app)
    stack = [((), root)]
    seen = 0
    while stack:
        path, cmd = stack.pop()
        r = _run(*path, "--help")
        assert r.returncode == 0, (path, r.stderr)
        assert "Usage" in r.stdout
        seen += 1
        for name, sub in getattr(cmd, "commands", {}).items():
            stack.append(((*path, name), sub))
    assert seen >= 4
