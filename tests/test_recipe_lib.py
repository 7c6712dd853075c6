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


HASH_SH = """#!/usr/bin/env bash
. "{root}/recipes/lib.sh"
parse_recipe_opts "$@"
steps=1000
[ "$quick" = true ] && steps=10
train() {{ mkdir -p "$exp/model"; echo "$*" >> "$exp/model/trained_with"; echo "$*" >> calls.txt; }}
run_stage 0 "train" --clean "$exp/model" train conf.yaml --set "steps=$steps"
"""


def test_done_marker_records_options_and_config(tmp_path):
    """A stage redoes itself (removing its --clean outputs) when its options, --quick or its
    YAML config changed since it was done; with the same ones it is skipped."""
    (tmp_path / "run.sh").write_text(HASH_SH.format(root=ROOT))
    (tmp_path / "conf.yaml").write_text("lr: 1\n")
    calls = tmp_path / "calls.txt"
    trained = tmp_path / "exp/model/trained_with"
    assert _run(tmp_path, "--quick").returncode == 0
    assert trained.read_text() == "conf.yaml --set steps=10\n"
    r = _run(tmp_path, "--quick")
    assert "done before; skipped" in r.stdout and len(calls.read_text().splitlines()) == 1
    r = _run(tmp_path)  # the full-size options in the same exp/: redone, the tiny model removed
    assert r.returncode == 0 and "options or config changed" in r.stdout
    assert trained.read_text() == "conf.yaml --set steps=1000\n"
    assert "done before; skipped" in _run(tmp_path).stdout
    (tmp_path / "conf.yaml").write_text("lr: 2\n")  # an edited config: redone too
    r = _run(tmp_path)
    assert "options or config changed" in r.stdout and len(calls.read_text().splitlines()) == 3
    # --force with the same options redoes the stage but keeps its outputs (training resumes)
    r = _run(tmp_path, "--force")
    assert "options or config changed" not in r.stdout and len(trained.read_text().splitlines()) == 2


def test_killed_stage_resumes_with_same_options_but_not_with_others(tmp_path):
    """A stage that started and did not finish keeps its outputs for a rerun with the same
    options (a resumable training) and loses them when the options changed."""
    (tmp_path / "run.sh").write_text(HASH_SH.format(root=ROOT).replace(
        'echo "$*" >> calls.txt; }', 'echo "$*" >> calls.txt; [ ! -e fail.flag ]; }'))
    (tmp_path / "conf.yaml").write_text("lr: 1\n")
    (tmp_path / "fail.flag").touch()
    trained = tmp_path / "exp/model/trained_with"
    assert _run(tmp_path, "--quick").returncode != 0
    assert _run(tmp_path, "--quick").returncode != 0
    assert len(trained.read_text().splitlines()) == 2  # same options: the partial outputs stay
    (tmp_path / "fail.flag").unlink()
    assert _run(tmp_path).returncode == 0
    assert trained.read_text() == "conf.yaml --set steps=1000\n"


CHAIN_SH = """#!/usr/bin/env bash
. "{root}/recipes/lib.sh"
parse_recipe_opts "$@"
run_stage 1 "make" bash -c 'echo "${{LEVEL:-1}}" > made.txt; echo make >> calls.txt'
run_stage 2:a "use" --clean used.txt bash -c 'cp made.txt used.txt; echo use >> calls.txt'
run_stage 2:b "also use" bash -c 'echo also >> calls.txt'
"""


def test_a_stage_that_runs_again_redoes_the_later_ones(tmp_path):
    """Parts of one stage number each have their marker; redoing stage 1 redoes both parts of 2,
    which read its outputs; --dry-run prints the commands and runs nothing."""
    (tmp_path / "run.sh").write_text(CHAIN_SH.format(root=ROOT))
    assert _run(tmp_path).returncode == 0
    assert sorted(p.name for p in (tmp_path / "exp/.done").iterdir()) == ["stage_1", "stage_2_a", "stage_2_b"]
    r = _run(tmp_path, "--stage", "1", "--stop-stage", "1", "--force")
    assert r.returncode == 0 and (tmp_path / "calls.txt").read_text().split() == ["make", "use", "also", "make"]
    r = _run(tmp_path)
    assert "Stage 1: make (done before; skipped)" in r.stdout and "Stage 2:a: use\n" in r.stdout
    assert (tmp_path / "calls.txt").read_text().split()[-2:] == ["use", "also"]
    assert _run(tmp_path, "--stage", "2").stdout.count("done before; skipped") == 2
    r = _run(tmp_path, "--dry-run", "--force")
    assert r.returncode == 0 and "  run: bash -c cp made.txt used.txt; echo use >> calls.txt" in r.stdout
    assert len((tmp_path / "calls.txt").read_text().split()) == 6


def test_config_of_a_parallel_job_is_hashed(tmp_path):
    """An edited config named inside a run_parallel job redoes its stage."""
    (tmp_path / "run.sh").write_text(f"""#!/usr/bin/env bash
. "{ROOT}/recipes/lib.sh"
parse_recipe_opts "$@"
job() {{ echo "$1" >> calls.txt; }}
run_stage 3:models "train" run_parallel "job a.yaml --set x=1" "job b.yaml"
""")
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text("lr: 1\n")
    assert _run(tmp_path).returncode == 0
    assert "done before; skipped" in _run(tmp_path).stdout
    (tmp_path / "b.yaml").write_text("lr: 2\n")
    r = _run(tmp_path)
    assert "options or config changed" in r.stdout
    assert sorted((tmp_path / "calls.txt").read_text().split()) == ["a.yaml", "a.yaml", "b.yaml", "b.yaml"]
