#!/usr/bin/env bash
# Shared stage machinery for egs/*/*/run.sh (source it; do not run it).
#
#   . "$SPEECHREP_ROOT/recipes/lib.sh"
#   parse_recipe_opts "$@"            # --stage N --stop-stage M --nj N --cmd CMD --quick --dry-run
#   run_stage 1 "Features: data/train -> data/train/feats.scp" speechrep features make-fbank ...
#
# Stage numbers mean the same in every recipe (a recipe leaves out what it does not need):
#   0 corpus    data directories and alignments
#   1 features  Kaldi features of the data sets
#   2 scorers   baselines (MFCC/fbank), conversion pairs, scorer models (speaker, phones)
#   3 train     the recipe's models, exp/<name>
#   4 extract   frame features, units, conversions, copy synthesis
#   5 evaluate  scores -> exp/eval/*.json
#   6 report    tables, HTML report, demo page
#   7 extras    ablations
# The stage functions built on run_stage are in recipes/ssl.sh (self-supervised
# representations) and recipes/vc.sh (voice conversion); corpus_synth and train_model below.
#
# A stage logs "Stage N: what", runs its command with output teed to exp/log/stage_N.log,
# leaves exp/.done/stage_N on success and is skipped when rerun (delete the marker or pass
# --force to redo it). The marker holds a hash of what the stage was made with (its command
# words, the contents of the YAML configs among them, the body of a shell function it calls,
# and --quick): a rerun with other options or an edited config redoes the stage, first
# removing the paths given with --clean (so that a full run after --quick in the same exp/
# does not resume the tiny models). A stage that runs again makes every later stage run again
# too (their markers are removed: they were made from its old outputs). Stages write through temp files/dirs and rename on
# success (the commands themselves are atomic), so a killed run resumes at the stage it was in.
# Wall-clock seconds per stage go to exp/stage_times.tsv.

set -euo pipefail

SPEECHREP_ROOT=${SPEECHREP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export SPEECHREP_ROOT
# Prefer the project's virtual environment when it exists.
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x "$SPEECHREP_ROOT/.venv/bin/python" ]; then
  export PATH="$SPEECHREP_ROOT/.venv/bin:$PATH"
fi

stage=0
stop_stage=100
nj=2
cmd=local
quick=false
force=false
dry_run=false
exp=exp

recipe_usage() {
  cat <<USAGE
Usage: $0 [--stage N] [--stop-stage M] [--nj N] [--cmd local|slurm|dask://HOST:PORT] [--quick] [--force] [--exp DIR]
  --stage/--stop-stage  run only stages N..M (default: all)
  --nj                  parallel jobs for data/feature stages (default: $nj)
  --cmd                 where jobs run (default: local; or set in cmd.sh)
  --quick               tiny corpus and configs (what the tests run)
  --force               redo stages even if their .done marker exists
  --exp                 experiment directory (default: exp)
  --dry-run             print what each stage would run (the jobs of a parallel stage one a line); run nothing
USAGE
}

parse_recipe_opts() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --stage) stage=$2; shift 2 ;;
      --stop-stage|--stop_stage) stop_stage=$2; shift 2 ;;
      --nj) nj=$2; shift 2 ;;
      --cmd) cmd=$2; shift 2 ;;
      --exp) exp=$2; shift 2 ;;
      --quick) quick=true; shift ;;
      --force) force=true; shift ;;
      --dry-run) dry_run=true; shift ;;
      -h|--help) recipe_usage; exit 0 ;;
      *) echo "$0: unknown option $1" >&2; recipe_usage >&2; exit 2 ;;
    esac
  done
  # Fail before any stage runs when the experiment directory cannot be made or written.
  if ! mkdir -p "$exp/log" "$exp/.done" 2>/dev/null || ! (: > "$exp/.done/.write_test") 2>/dev/null; then
    echo "error: $exp: cannot create or write the experiment directory (not a directory, read-only or no permission)" >&2
    exit 1
  fi
  rm -f "$exp/.done/.write_test"
}

# stage_hash command args...: what a stage is made with (see the header), as one hash.
stage_hash() {
  {
    printf 'quick=%s\0' "$quick"
    printf '%s\0' "$@"
    local a w words
    for a in "$@"; do
      read -ra words <<< "$a"  # the words of a run_parallel job too
      for w in "${words[@]}"; do
        case "$w" in
          *.yaml|*.yml) if [ -f "$w" ]; then cat "$w"; fi ;;
        esac
      done
    done
    if declare -F "$1" >/dev/null; then declare -f "$1"; fi
  } | sha256sum | cut -d' ' -f1
}

# run_stage N[:PART] "description" [--clean PATH]... command args...
#   N is the stage number that --stage/--stop-stage select; a stage made of several parts
#   (e.g. 3:cpc and 3:vqvae, two trainings) gives each its own marker, log and timing.
run_stage() {
  local id=$1 desc=$2
  local n=${id%%:*}
  shift 2
  local clean=()
  while [ "${1:-}" = --clean ]; do clean+=("$2"); shift 2; done
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then
    return 0
  fi
  local marker="$exp/.done/stage_${id/:/_}" log="$exp/log/stage_${id/:/_}.log" hash before=
  if [ "$dry_run" = true ]; then
    echo "Stage $id: $desc"
    if [ "$1" = run_parallel ]; then shift; printf '  job: %s\n' "$@"; else echo "  run: $*"; fi
    return 0
  fi
  hash=$(stage_hash "$@")
  if [ -e "$marker" ]; then before=$(cat "$marker"); elif [ -e "$marker.started" ]; then before=$(cat "$marker.started"); fi
  if [ -e "$marker" ] && [ "$before" = "$hash" ] && [ "$force" != true ]; then
    echo "Stage $id: $desc (done before; skipped)"
    return 0
  fi
  echo "Stage $id: $desc"
  if [ -n "$before" ] && [ "$before" != "$hash" ]; then
    # made with other options: what it left would be resumed or mixed with the new outputs
    echo "  options or config changed since the last run of this stage: redoing it${clean:+ (removing ${clean[*]})}"
    rm -rf "${clean[@]}"
  fi
  rm -f "$marker"  # a forced rerun that fails must not keep the old success marker
  # what later stages made came from this stage's old outputs: they run again too (as
  # stages begun with their hash, so that they are cleaned if their own options changed)
  local later
  for later in "$exp"/.done/stage_*; do
    case "$later" in *.started|*"*") continue ;; esac
    if [ "$(basename "$later" | cut -d_ -f2)" -gt "$n" ]; then mv -f "$later" "$later.started"; fi
  done
  echo "$hash" > "$marker.started"
  local t0 t1 rc
  t0=$(date +%s.%N)
  set +e
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  t1=$(date +%s.%N)
  if [ "$rc" != 0 ]; then
    echo "Stage $id failed (exit $rc); see $log" >&2
    exit "$rc"
  fi
  awk -v n="$id" -v d="$desc" -v a="$t0" -v b="$t1" 'BEGIN { printf "%s\t%s\t%.1f\n", n, d, b - a }' >> "$exp/stage_times.tsv"
  mv "$marker.started" "$marker"
}

# run_parallel "cmd args" ...: run the commands (shell functions or programs; words split on
# spaces), at most $nj at a time, each logging to $exp/log/<first two words joined by _>.log; fails,
# naming every failed command and its log, when any of them fails.
run_parallel() {
  local - job name words failed=()
  set -f  # a job's words are not file patterns (data.phones=[a,b])
  local -a pids=() names=()
  for job in "$@"; do
    while [ "$(jobs -rp | wc -l)" -ge "$nj" ]; do wait -n || true; done
    read -ra words <<< "$job"
    name=${words[0]}${words[1]:+_${words[1]//\//_}}  # the job's first two words name its log
    echo "  started: $job (log: $exp/log/$name.log)"
    # shellcheck disable=SC2086  # word splitting of the job is the point
    $job > "$exp/log/$name.log" 2>&1 &
    pids+=($!)
    names+=("$name")
  done
  local i
  for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then
      echo "  finished: ${names[$i]}"
    else
      failed+=("${names[$i]} (see $exp/log/${names[$i]}.log)")
    fi
  done
  if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}" >&2
    return 1
  fi
}

# has_command "train" -> true when this installation provides `speechrep train`
has_command() {
  speechrep "$@" --help >/dev/null 2>&1
}

# corpus_synth SIZE: stage 0, the embedded synthetic corpus -> $db (another size redoes it)
corpus_synth() {
  run_stage 0 "Corpus: synthetic speech ($1) -> $db" --clean "$db" _synth_corpus "$1" "$db"
}
_synth_corpus() {  # the number of jobs is left out of the stage's hash
  "$SPEECHREP_ROOT/egs/synth/local/data.sh" --size "$1" --nj "$nj" "$2"
}

# train_model NAME CONFIG [--set KEY=VALUE]...: stage 3:NAME, speechrep train on
# $db/data/$train_set (validation: $valid_set) -> $exp/NAME, resumed after a kill
train_model() {
  local name=$1 config=$2
  shift 2
  run_stage "3:$name" "Train $name: $db/data/${train_set:-train} -> $exp/$name" --clean "$exp/$name" \
    speechrep train "$config" --set "exp_dir=$exp/$name" --set "data.train=$db/data/${train_set:-train}" \
      --set "data.valid=$db/data/${valid_set:-dev}" "$@" --resume
}
