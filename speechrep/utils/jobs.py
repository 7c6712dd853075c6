"""Run a batch of jobs locally, on Slurm (submitit) or on a Dask cluster, one log per job.

Kaldi's ``run.pl``/``slurm.pl`` contract, on existing engines instead of a home-made
scheduler:

* ``--cmd local``: one fresh local Python process per job, at most ``max_parallel`` at a
  time.
* ``--cmd slurm`` or ``--cmd slurm:partition=P,time=T,mem=M,cpus=C,gpus=G,account=A,
  qos=Q,constraint=K``: a Slurm job array through ``submitit.AutoExecutor``;
  ``time`` is minutes, ``H:MM:SS`` or ``D-HH:MM:SS``; ``mem`` is GB or has a ``M``/``G``
  suffix.
* ``--cmd dask://HOST:PORT``: tasks on the ``dask.distributed`` scheduler at that address.
  A task's Python output is redirected to its log, which is process-wide: start the
  workers with one thread each (``--nthreads 1``) so that logs do not mix.

Slurm and Dask need the ``cluster`` extra (``pip install '.[cluster]'``); :func:`check_cmd`
says so before anything is written.

Job ``i`` (1-based) writes ``{log_dir}/{log_name}.{i}.log``: a start line, everything
the job prints, the traceback if it fails, and an end line with its status (also when
it is interrupted by SIGINT or SIGTERM). The log directory must be visible to the
workers (a shared file system on a cluster). All jobs run to the end; then any failure
raises one error naming the log of the first failed job.

Local jobs die with their parent: on Linux each job asks the kernel for SIGTERM when the
process that started it dies (``PR_SET_PDEATHSIG``), so a ``kill -9`` of the driver leaves
no job writing behind a rerun's back. A job turns SIGINT and SIGTERM into
``KeyboardInterrupt``, so its ``finally`` clauses remove its temporary files.
:func:`output_lock` keeps two runs from writing into one output directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import errno
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from speechrep.errors import ConfigError, SpeechrepError
from speechrep.utils.job_cmd import JobCommand, check_cmd

__all__ = ["output_lock", "run_jobs"]

#: seconds interrupted local jobs get to clean up before they are killed
_TERMINATE_GRACE = 10.0
#: environment variable that tells a local job its parent's pid
_PARENT_ENV = "SPEECHREP_JOB_PARENT"


@contextlib.contextmanager
def output_lock(out_dir: str | Path, *, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``out_dir`` (``fcntl.flock`` on ``out_dir/.lock``).

    The kernel releases the lock when the process dies, however it dies, so a stale lock
    never blocks a rerun. ``out_dir`` must exist.

    Raises
    ------
    SpeechrepError
        Another process holds the lock (a concurrent run writing to the same place).
    """
    import fcntl

    lock = Path(out_dir) / ".lock"
    with open(lock, "a+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise SpeechrepError(
                f"another {what} is writing to this directory (locked); wait for it to end or use another output",
                path=out_dir,
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _describe(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def _stamp() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _write_header(log: TextIO, func: Callable[..., Any], job: dict[str, Any], index: int, total: int) -> None:
    log.write(f"# job {index} of {total}: {_describe(func)}(**{job!r})\n")
    log.write(f"# started at {_stamp()} on {socket.gethostname()}\n")
    log.flush()


def _run_and_log(func: Callable[..., Any], job: dict[str, Any], log: TextIO) -> int:
    """Call ``func(**job)``; write any traceback and an end line to ``log``; 0 = success,
    130 = interrupted, 1 = failed."""
    start = time.monotonic()
    status, outcome = 0, "ok"
    try:
        func(**job)
    except KeyboardInterrupt:  # SIGINT, or SIGTERM through _interrupt_on_signals
        status, outcome = 130, "interrupted"
    except BaseException:  # noqa: BLE001  (the log must record any failure)
        status, outcome = 1, "FAILED"
        traceback.print_exc(file=log)
    sys.stdout.flush()
    sys.stderr.flush()
    log.write(f"# ended at {_stamp()} after {time.monotonic() - start:.1f} s: {outcome}\n")
    log.flush()
    return status


def run_logged_job(
    func: Callable[..., Any], job: dict[str, Any], log_path: str, index: int, total: int, redirect_fds: bool
) -> int:
    """Run ``func(**job)`` on a cluster worker with its output in ``log_path``; return 0 on
    success, 1 on failure.

    With ``redirect_fds`` the process's file descriptors 1 and 2 go to the log too (output
    of C code and child processes); only safe when the process runs this one job.
    """
    with open(log_path, "w", buffering=1, encoding="utf-8", errors="replace") as log:
        _write_header(log, func, job, index, total)
        with contextlib.ExitStack() as stack:
            if redirect_fds:
                sys.stdout.flush()
                sys.stderr.flush()
                saved = [os.dup(1), os.dup(2)]
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)

                def restore() -> None:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    for fd, copy in zip((1, 2), saved):
                        os.dup2(copy, fd)
                        os.close(copy)

                stack.callback(restore)
            stack.enter_context(contextlib.redirect_stdout(log))
            stack.enter_context(contextlib.redirect_stderr(log))
            return _run_and_log(func, job, log)


def _die_with_parent() -> None:
    """Have the kernel send SIGTERM to this process when its parent dies (Linux), and exit
    now if the parent already died before that was set up."""
    parent = int(os.environ.get(_PARENT_ENV, "0"))
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1  # <linux/prctl.h>
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    if parent and os.getppid() != parent:
        os._exit(1)


def _interrupt_on_signals() -> None:
    """Turn the first SIGINT or SIGTERM into ``KeyboardInterrupt`` and ignore later ones,
    so that cleanup (temporary files, the log's end line) is not itself interrupted."""

    def interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def _local_job_main() -> None:
    """Entry point of a local job process: stdin holds the pickled (sys.path, (func, job))
    payload; stdout and stderr are the job's log file."""
    _die_with_parent()
    _interrupt_on_signals()
    search_path, blob = pickle.load(sys.stdin.buffer)
    # the parent's import path, so that func's module (e.g. next to a driver script) imports
    sys.path[:0] = [p for p in search_path if p not in sys.path]
    try:
        func, job = pickle.loads(blob)
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        print("# FAILED: cannot load the job function", flush=True)
        sys.exit(1)
    sys.exit(_run_and_log(func, job, sys.stdout))


def _run_local(
    func: Callable[..., Any], jobs: Sequence[dict], logs: list[Path], max_parallel: int, bar: Any
) -> set[int]:
    """Run each job in a fresh Python process, at most ``max_parallel`` at a time; return
    the indices of failed jobs.

    Fresh interpreters (not fork, not multiprocessing's re-import of ``__main__``) keep jobs
    independent of the caller's state and let a driver script run jobs without a
    ``__main__`` guard; the job's stdout/stderr file descriptors are its log file, so output
    of C code and child processes is logged too.
    """
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{_PARENT_ENV: str(os.getpid())})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    argv = [sys.executable, "-c", "from speechrep.utils.jobs import _local_job_main; _local_job_main()"]
    pending = list(range(len(jobs)))
    running: dict[int, subprocess.Popen] = {}
    failed: set[int] = set()
    try:
        while pending or running:
            while pending and len(running) < max_parallel:
                i = pending.pop(0)
                payload = pickle.dumps((list(sys.path), pickle.dumps((func, dict(jobs[i])))))
                with open(logs[i], "w", encoding="utf-8") as log:
                    _write_header(log, func, dict(jobs[i]), i + 1, len(jobs))
                    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=env)
                assert proc.stdin is not None
                proc.stdin.write(payload)
                proc.stdin.close()
                running[i] = proc
            time.sleep(0.02)
            for i, proc in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[i]
                if code != 0:
                    failed.add(i)
                if code < 0:
                    _log_killed(logs[i], -code)
                bar.update(1)
    finally:
        # interrupted (Ctrl-C, SIGTERM): jobs clean up and end their logs, or are killed
        for proc in running.values():
            proc.terminate()
        deadline = time.monotonic() + _TERMINATE_GRACE
        for i, proc in running.items():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.returncode < 0:
                _log_killed(logs[i], -proc.returncode)
    return failed


def _log_killed(log_path: Path, signum: int) -> None:
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"# ended at {_stamp()}: killed by signal {signum}\n")


def _slurm_executor(options: dict[str, Any], folder: Path, *, name: str, max_parallel: int, cluster: str = "slurm"):
    """A configured ``submitit.AutoExecutor`` (``cluster`` other than slurm: for tests)."""
    import submitit

    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    except RuntimeError as e:
        raise SpeechrepError(f"cannot use Slurm here: {e}", field="--cmd") from None
    executor.update_parameters(name=name, slurm_array_parallelism=max_parallel, **options)
    return executor


def _run_slurm(
    func: Callable[..., Any], jobs: Sequence[dict], logs: list[Path], command: JobCommand, name: str, max_parallel: int, bar: Any
) -> set[int]:
    executor = _slurm_executor(command.options, logs[0].parent / "submitit", name=name, max_parallel=max_parallel)
    with executor.batch():
        handles = [
            executor.submit(run_logged_job, func, dict(job), str(log), i + 1, len(jobs), True)
            for i, (job, log) in enumerate(zip(jobs, logs))
        ]
    failed: set[int] = set()
    for i, handle in enumerate(handles):
        try:
            status = handle.result()
        except Exception as e:  # noqa: BLE001  (killed, timed out, node failure: all count as failed)
            status = 1
            with open(logs[i], "a", encoding="utf-8") as log:
                log.write(f"# slurm job {handle.job_id} failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}\n")
        if status != 0:
            failed.add(i)
        bar.update(1)
    return failed


def _run_dask(
    func: Callable[..., Any], jobs: Sequence[dict], logs: list[Path], address: str, max_parallel: int, bar: Any
) -> set[int]:
    from dask.distributed import Client, as_completed

    try:
        client = Client(address, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise SpeechrepError(f"cannot connect to the dask scheduler at {address}: {e}", field="--cmd") from None
    failed: set[int] = set()
    with client:
        # workers may run several tasks in threads of one process: no fd redirection
        def submit(i: int) -> Any:
            future = client.submit(run_logged_job, func, dict(jobs[i]), str(logs[i]), i + 1, len(jobs), False, pure=False)
            index_of[future.key] = i
            return future

        index_of: dict[Any, int] = {}
        queue = as_completed([submit(i) for i in range(max_parallel)], loop=client.loop)
        next_job = max_parallel
        for future in queue:
            i = index_of[future.key]
            try:
                status = future.result()
            except Exception as e:  # noqa: BLE001  (worker died, task lost)
                status = 1
                with open(logs[i], "a", encoding="utf-8") as log:
                    log.write(f"# dask task failed: {type(e).__name__}: {e}\n")
            if status != 0:
                failed.add(i)
            bar.update(1)
            if next_job < len(jobs):
                queue.add(submit(next_job))
                next_job += 1
    return failed


def run_jobs(
    func: Callable[..., Any],
    jobs: Sequence[dict],
    *,
    cmd: str = "local",
    log_dir: str | Path,
    log_name: str,
    max_parallel: int | None = None,
    progress: bool = True,
) -> None:
    """Run ``func(**job)`` for every job, in parallel, each with its own log file.

    Parameters
    ----------
    func : a module-level (importable, picklable) callable.
    jobs : keyword arguments of each job (picklable values).
    cmd : ``"local"``, ``"slurm[:key=value,...]"`` or ``"dask://HOST:PORT"``.
    log_dir, log_name : job ``i`` (1-based) logs to ``log_dir/{log_name}.{i}.log``.
    max_parallel : most jobs running at once (default: all).
    progress : show a progress bar of finished jobs (on a terminal).

    Raises
    ------
    ConfigError
        Bad ``cmd`` (or its engine not installed) or ``max_parallel``.
    SpeechrepError
        After all jobs ended, when any failed: ``"job 3 of 4 failed, see <log>"``.
    """
    from speechrep.utils.progress import progress_bar

    command = check_cmd(cmd)
    if max_parallel is not None and max_parallel < 1:
        raise ConfigError(f"must be >= 1, got {max_parallel}", field="max_parallel")
    qualname = getattr(func, "__qualname__", "")
    if not callable(func) or "<" in qualname or getattr(func, "__module__", "__main__") == "__main__":
        # jobs run in other processes/machines, which import the function by name
        raise TypeError(f"job function must be defined at module level in an importable module, got {func!r}")
    if not jobs:
        return
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = [(log_dir / f"{log_name}.{i}.log").absolute() for i in range(1, len(jobs) + 1)]
    parallel = len(jobs) if max_parallel is None else min(max_parallel, len(jobs))
    with progress_bar(total=len(jobs), desc=log_name, unit="job", enabled=progress) as bar:
        if command.kind == "local":
            failed = _run_local(func, jobs, logs, parallel, bar)
        elif command.kind == "slurm":
            failed = _run_slurm(func, jobs, logs, command, log_name, parallel, bar)
        else:
            assert command.address is not None
            failed = _run_dask(func, jobs, logs, command.address, parallel, bar)
    if failed:
        first = min(failed)
        which = f"job {first + 1}" if len(failed) == 1 else "jobs " + ", ".join(str(i + 1) for i in sorted(failed))
        raise SpeechrepError(f"{which} of {len(jobs)} failed, see {logs[first]}")
