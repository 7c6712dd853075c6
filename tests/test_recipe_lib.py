"""recipes/lib.sh: stage selection, .done markers, resume after a failure."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUN_SH = """#!/usr/bin/env bash
. "{root}/recipes/lib.sh"
parse_recipe_opts "$@"
run_stage 0 "first" bash -c 'echo one >> calls.txt'
run_stage 1 "second (fails while fail.flag exists)" bash -c 'echo two >> calls.txt; [ ! -e fail.flag ]'
run_stage 2 "third" bash -c 'echo three >> calls.txt'
"""


def _run(d, *args):
    return subprocess.run(["bash", "run.sh", *args], cwd=d, capture_output=True, text=True)


def test_stages_resume_and_select(tmp_path):
    (tmp_path / "run.sh").write_text(RUN_SH.format(root=ROOT))
    (tmp_path / "fail.flag").touch()
    r = _run(tmp_path)
    assert r.returncode != 0 and "Stage 1 failed" in r.stderr and "stage_1.log" in r.stderr
    assert (tmp_path / "exp/.done/stage_0").exists() and not (tmp_path / "exp/.done/stage_1").exists()
    (tmp_path / "fail.flag").unlink()
    r = _run(tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Stage 0: first (done before; skipped)" in r.stdout
    assert (tmp_path / "calls.txt").read_text().split() == ["one", "two", "two", "three"]
    times = (tmp_path / "exp/stage_times.tsv").read_text().splitlines()
    assert [t.split("\t")[0] for t in times] == ["0", "1", "2"]
    r = _run(tmp_path, "--stage", "2", "--stop-stage", "2", "--force")
    assert r.returncode == 0 and "Stage 0" not in r.stdout and "Stage 2: third" in r.stdout
    assert (tmp_path / "calls.txt").read_text().split()[-1] == "three"
    assert _run(tmp_path, "--bogus").returncode == 2


def test_unusable_exp_dir_fails_before_any_stage(tmp_path):
    (tmp_path / "run.sh").write_text(RUN_SH.format(root=ROOT))
    (tmp_path / "blocker").write_text("a file where the exp dir's parent should be")
    r = _run(tmp_path, "--exp", "blocker/exp")
    assert r.returncode == 1
    assert r.stderr.strip() == ("error: blocker/exp: cannot create or write the experiment directory "
                                "(not a directory, read-only or no permission)")
    assert "Stage" not in r.stdout and not (tmp_path / "calls.txt").exists()


PARALLEL_SH = """#!/usr/bin/env bash
. "{root}/recipes/lib.sh"
parse_recipe_opts "$@"
slow() {{ sleep 0.3; echo "slow $1" >> order.txt; }}
fast() {{ echo fast >> order.txt; }}
bad() {{ echo "went wrong"; return 3; }}
jobs_list=("slow a" fast)
[ -e fail.flag ] && jobs_list+=(bad)
run_stage 0 "parallel" run_parallel "${{jobs_list[@]}}"
"""


def test_run_parallel_limits_jobs_logs_each_and_reports_failures(tmp_path):
    (tmp_path / "run.sh").write_text(PARALLEL_SH.format(root=ROOT))
    r = _run(tmp_path, "--nj", "1")  # one at a time: the slow job finishes before the fast one starts
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "order.txt").read_text().split("\n")[:2] == ["slow a", "fast"]
    assert (tmp_path / "exp/log/slow_a.log").exists() and (tmp_path / "exp/log/fast.log").exists()
    (tmp_path / "order.txt").unlink()
    r = _run(tmp_path, "--nj", "2", "--force")  # side by side: the fast one is first
    assert r.returncode == 0 and (tmp_path / "order.txt").read_text().split("\n")[:2] == ["fast", "slow a"]
    (tmp_path / "fail.flag").touch()
    r = _run(tmp_path, "--nj", "2", "--force")
    assert r.returncode != 0 and "failed: bad (see exp/log/bad.log)" in r.stdout + r.stderr
    assert (tmp_path / "exp/log/bad.log").read_text() == "went wrong\n"
    assert not (tmp_path / "exp/.done/stage_0").exists()
