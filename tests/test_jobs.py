"""Job runner: local processes, Dask (LocalCluster), Slurm option parsing."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from speechrep.errors import ConfigError, SpeechrepError
from speechrep.utils.job_cmd import JobCommand, check_cmd, parse_cmd
from speechrep.utils.jobs import _slurm_executor, output_lock, run_jobs


# --- job functions (module level: the workers import them) -------------------------------


def write_square(*, x: int, out: str) -> None:
    print(f"python stdout {x}")
    print(f"python stderr {x}", file=sys.stderr)
    os.system(f"echo shell output {x}")  # output of a child process lands in the log too
    Path(out).write_text(str(x * x))


def fail_on_three(*, x: int) -> None:
    print(f"working on {x}")
    if x == 3:
        raise ValueError("three is bad")


def crash(*, x: int) -> None:
    if x == 2:
        os._exit(7)


# --- parse_cmd ---------------------------------------------------------------------------


def test_parse_cmd_valid():
    assert parse_cmd("local") == JobCommand("local")
    assert parse_cmd("slurm") == JobCommand("slurm")
    got = parse_cmd("slurm:partition=gpu,time=1:30:00,mem=4000M,cpus=2,gpus=1,account=acc,qos=q,constraint=v100")
    assert got.options == {
        "slurm_partition": "gpu",
        "timeout_min": 90,
        "mem_gb": pytest.approx(4000 / 1024),
        "cpus_per_task": 2,
        "gpus_per_node": 1,
        "slurm_account": "acc",
        "slurm_qos": "q",
        "slurm_constraint": "v100",
    }
    assert parse_cmd("slurm:time=45").options == {"timeout_min": 45}
    assert parse_cmd("slurm:time=2-12").options == {"timeout_min": 3600}
    assert parse_cmd("slurm:time=10:30").options == {"timeout_min": 11}  # MM:SS rounds up
    assert parse_cmd("slurm:mem=8").options == {"mem_gb": 8.0}
    assert parse_cmd("dask://sched.example.org:8786") == JobCommand("dask", address="tcp://sched.example.org:8786")


@pytest.mark.parametrize(
    "cmd, message",
    [
        ("queue.pl", "unknown job command"),
        ("slurm:partition", "expected key=value"),
        ("slurm:nodes=2", "unknown slurm option 'nodes'"),
        ("slurm:time=soon", "bad time 'soon'"),
        ("slurm:time=0", "must be positive"),
        ("slurm:mem=lots", "bad memory"),
        ("slurm:cpus=0", "cpus must be a positive integer"),
        ("dask://host", "bad dask scheduler address"),
        ("dask://host:99999", "bad dask scheduler address"),
    ],
)
def test_parse_cmd_bad(cmd, message):
    with pytest.raises(ConfigError, match=rf"^--cmd: .*{message}"):
        parse_cmd(cmd)


def test_slurm_executor_parameters(tmp_path):
    options = parse_cmd("slurm:partition=gpu,time=90,mem=4G,cpus=2,qos=q").options
    # submitit checks every slurm_* name against Slurm's parameters even on another cluster
    executor = _slurm_executor(options, tmp_path, name="make_fbank", max_parallel=3, cluster="local")
    assert executor._executor.parameters["timeout_min"] == 90
    with pytest.raises(NameError):
        _slurm_executor({"slurm_nonsense": 1}, tmp_path, name="x", max_parallel=1, cluster="local")


def test_slurm_without_slurm_is_a_clear_error(tmp_path):
    if any((Path(d) / "srun").exists() for d in os.environ.get("PATH", "").split(os.pathsep)):
        pytest.skip("Slurm is installed here")
    with pytest.raises(SpeechrepError, match="--cmd: cannot use Slurm here"):
        run_jobs(fail_on_three, [{"x": 1}], cmd="slurm", log_dir=tmp_path, log_name="j")


# --- local -------------------------------------------------------------------------------


def test_local_success_logs_everything(tmp_path):
    jobs = [{"x": i, "out": str(tmp_path / f"out.{i}")} for i in (1, 2, 3)]
    run_jobs(write_square, jobs, log_dir=tmp_path / "log", log_name="sq", max_parallel=2, progress=False)
    assert [(tmp_path / f"out.{i}").read_text() for i in (1, 2, 3)] == ["1", "4", "9"]
    log = (tmp_path / "log" / "sq.2.log").read_text()
    assert re.match(r"# job 2 of 3: (tests\.)?test_jobs\.write_square\(\*\*{.x.: 2", log)
    for text in ("python stdout 2", "python stderr 2", "shell output 2", "# started at", ": ok"):
        assert text in log
    assert sorted(p.name for p in (tmp_path / "log").iterdir()) == ["sq.1.log", "sq.2.log", "sq.3.log"]


def test_local_failure_names_log_after_all_finish(tmp_path):
    with pytest.raises(SpeechrepError, match=rf"^job 3 of 4 failed, see {tmp_path}/log/f.3.log$"):
        run_jobs(fail_on_three, [{"x": i} for i in (1, 2, 3, 4)], log_dir=tmp_path / "log", log_name="f", progress=False)
    log3 = (tmp_path / "log" / "f.3.log").read_text()
    assert "ValueError: three is bad" in log3 and "Traceback" in log3 and "FAILED" in log3
    assert ": ok" in (tmp_path / "log" / "f.4.log").read_text()  # the others still ran


def test_local_from_driver_script_without_main_guard(tmp_path):
    # the job function lives next to a plain script: jobs must not re-run the script
    (tmp_path / "mymod.py").write_text("def hello(*, x):\n    print('hello', x)\n")
    (tmp_path / "driver.py").write_text(
        "from speechrep.utils.jobs import run_jobs\nfrom mymod import hello\n"
        f"run_jobs(hello, [{{'x': 1}}, {{'x': 2}}], log_dir={str(tmp_path / 'log')!r}, log_name='h')\n"
        "print('driver done')\n"
    )
    r = subprocess.run([sys.executable, "driver.py"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.count("driver done") == 1, r.stderr
    assert "hello 2\n" in (tmp_path / "log" / "h.2.log").read_text()


def test_local_crashed_process_is_a_failure(tmp_path):
    with pytest.raises(SpeechrepError, match="job 2 of 2 failed"):
        run_jobs(crash, [{"x": 1}, {"x": 2}], log_dir=tmp_path, log_name="c", max_parallel=1, progress=False)


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="max_parallel"):
        run_jobs(crash, [{"x": 1}], log_dir=tmp_path, log_name="c", max_parallel=0)
    with pytest.raises(TypeError, match="module level"):
        run_jobs(lambda x: x, [{"x": 1}], log_dir=tmp_path, log_name="c")
    main_func = type(crash)(crash.__code__, {}, "in_main")
    main_func.__module__ = "__main__"
    with pytest.raises(TypeError, match="importable module"):
        run_jobs(main_func, [{"x": 1}], log_dir=tmp_path, log_name="c")
    with pytest.raises(ConfigError, match="--cmd"):
        run_jobs(crash, [{"x": 1}], cmd="sge", log_dir=tmp_path, log_name="c")
    run_jobs(crash, [], log_dir=tmp_path / "none", log_name="c")
    assert not (tmp_path / "none").exists()


# --- dask --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_address():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def test_dask_success_and_failure(tmp_path, dask_address):
    cmd = "dask://" + dask_address.removeprefix("tcp://")
    jobs = [{"x": i, "out": str(tmp_path / f"out.{i}")} for i in (1, 2, 3)]
    run_jobs(write_square, jobs, cmd=cmd, log_dir=tmp_path / "log", log_name="sq", max_parallel=2, progress=False)
    assert [(tmp_path / f"out.{i}").read_text() for i in (1, 2, 3)] == ["1", "4", "9"]
    assert "python stdout 3" in (tmp_path / "log" / "sq.3.log").read_text()

    with pytest.raises(SpeechrepError, match=rf"job 3 of 4 failed, see {tmp_path}/log/f.3.log"):
        run_jobs(fail_on_three, [{"x": i} for i in range(1, 5)], cmd=cmd, log_dir=tmp_path / "log", log_name="f", progress=False)
    assert "ValueError: three is bad" in (tmp_path / "log" / "f.3.log").read_text()
    assert ": ok" in (tmp_path / "log" / "f.4.log").read_text()


def test_dask_unreachable_scheduler(tmp_path, monkeypatch):
    import speechrep.utils.jobs as jobs_module

    real_client = __import__("dask.distributed", fromlist=["Client"]).Client

    def quick_client(address, **kwargs):
        return real_client(address, **{**kwargs, "timeout": "1s"})

    monkeypatch.setattr("dask.distributed.Client", quick_client)
    with pytest.raises(SpeechrepError, match="--cmd: cannot connect to the dask scheduler at tcp://127.0.0.1:9"):
        jobs_module.run_jobs(fail_on_three, [{"x": 1}], cmd="dask://127.0.0.1:9", log_dir=tmp_path, log_name="d")


def interrupted(*, x: int) -> None:
    print(f"working on {x}")
    if x == 2:
        raise KeyboardInterrupt  # what SIGINT/SIGTERM become inside a local job


@pytest.mark.parametrize("cmd, module", [("slurm", "submitit"), ("slurm:time=5", "submitit"), ("dask://h:1", "distributed")])
def test_cluster_commands_without_the_extra_say_how_to_install_it(cmd, module, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, module, None)  # importing it fails, as when not installed
    with pytest.raises(ConfigError, match=r"^--cmd: .* jobs need the cluster extra .*pip install '\.\[cluster\]'$"):
        check_cmd(cmd)
    with pytest.raises(ConfigError, match="cluster extra"):
        run_jobs(fail_on_three, [{"x": 1}], cmd=cmd, log_dir=tmp_path / "log", log_name="j")
    assert not (tmp_path / "log").exists()
    assert check_cmd("local") == JobCommand("local")


def test_local_interrupted_job_ends_its_log(tmp_path):
    with pytest.raises(SpeechrepError, match="job 2 of 2 failed"):
        run_jobs(interrupted, [{"x": 1}, {"x": 2}], log_dir=tmp_path, log_name="i", progress=False)
    lines = (tmp_path / "i.2.log").read_text().splitlines()
    assert lines[-1].startswith("# ended at") and lines[-1].endswith(": interrupted")
    assert not any("Traceback" in line for line in lines)


def test_output_lock_refuses_a_second_holder(tmp_path):
    with output_lock(tmp_path, what="make-fbank run"):
        with pytest.raises(SpeechrepError, match=f"^{tmp_path}: another make-fbank run is writing to this directory"):
            with output_lock(tmp_path, what="make-fbank run"):
                pass
    with output_lock(tmp_path, what="make-fbank run"):  # released on exit
        pass
