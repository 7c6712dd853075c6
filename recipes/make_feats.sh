#!/usr/bin/env bash
# Extract Kaldi features for a data directory (Kaldi steps/make_fbank.sh style).
#
#   recipes/make_feats.sh [--nj N] [--cmd CMD] [--config F] [--type fbank|mfcc] <data-dir> [<log-dir>] <feat-dir>
#
# Writes <feat-dir>/raw_<type>_<data>.<j>.{ark,scp}, <data-dir>/feats.scp, utt2num_frames,
# frame_shift and conf/<type>.yaml; job logs go to <log-dir> (default <feat-dir>/log).
# A rerun skips jobs whose outputs are complete. The speechrep command is
# ${SPEECHREP:-speechrep}.
set -euo pipefail

nj=4
cmd=local
config=
type=fbank

usage() {
  echo "Usage: $0 [--nj N] [--cmd CMD] [--config F] [--type fbank|mfcc] <data-dir> [<log-dir>] <feat-dir>" >&2
  echo "  --nj N      parallel jobs (default $nj); --cmd local|slurm[:...]|dask://HOST:PORT (default $cmd)" >&2
  echo "  --config F  feature config YAML; --type fbank or mfcc (default $type)" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --nj) nj=$2; shift 2 ;;
    --cmd) cmd=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --type) type=$2; shift 2 ;;
    -h|--help) usage ;;
    --*) echo "$0: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done

case $# in
  2) data=$1; logdir=$2/log; featdir=$2 ;;
  3) data=$1; logdir=$2; featdir=$3 ;;
  *) usage ;;
esac
case "$type" in
  fbank|mfcc) ;;
  *) echo "$0: --type must be fbank or mfcc, got '$type'" >&2; exit 1 ;;
esac

args=("$data" "$featdir" --nj "$nj" --cmd "$cmd" --log-dir "$logdir")
[ -n "$config" ] && args+=(--config "$config")

echo "$0: $type features for $data -> $featdir (logs in $logdir)"
${SPEECHREP:-speechrep} features "make-$type" "${args[@]}"
