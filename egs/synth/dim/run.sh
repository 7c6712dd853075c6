#!/usr/bin/env bash
# Deep InfoMax and its autoencoder special case on the embedded synthetic corpus.
#
#   ./run.sh [--stage N] [--stop-stage M] [--nj N] [--quick] [--force] [--exp DIR]
#
# Stages (each skipped when done; see recipes/lib.sh):
#   0  corpus: synthetic speech with exact phone alignments -> $DB
#   1  features: Kaldi log-mel filterbanks of train/dev/test -> $DB/data/<set>/feats.scp
#   2  train DIM -> $exp/dim
#   3  train the autoencoder: the same config with the reconstruction critic and positive estimator -> $exp/autoencoder
#   4  extract frame codes of the test set with both models
#   5  evaluate both and the MFCC/fbank baselines; one table -> $exp/eval/table.md
# --quick uses the tiny corpus and conf/tiny.yaml (what the tests run).
# The corpus goes to $DB (default $exp/db); set DB to share one between recipes.
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"

if [ "$quick" = true ]; then
  size=tiny; conf=conf/tiny.yaml
else
  size=default; conf=conf/train_dim.yaml
fi
db=${DB:-$exp/db}
data=(--set "data.train=$db/data/train" --set "data.valid=$db/data/dev")

run_stage 0 "Corpus: synthetic speech ($size) -> $db" ../local/data.sh --size "$size" --nj "$nj" "$db"
run_stage 1 "Features: $db/data/{train,dev,test} -> $db/fbank" \
  bash -c 'for s in train dev test; do ../../../recipes/make_feats.sh --nj "$1" "$2/data/$s" "$2/fbank/$s" || exit 1; done' _ "$nj" "$db"
run_stage 2 "Train DIM: $db/data/train -> $exp/dim" \
  speechrep train "$conf" --set "exp_dir=$exp/dim" "${data[@]}" --resume
run_stage 3 "Train autoencoder: $db/data/train -> $exp/autoencoder" \
  speechrep train "$conf" --set "exp_dir=$exp/autoencoder" --set model.args.critic=reconstruction --set model.args.estimator=positive "${data[@]}" --resume
run_stage 4 "Extract: $db/data/test -> $exp/{dim,autoencoder}/extract_test" bash -c '
  set -e
  for m in dim autoencoder; do speechrep extract --force --model "$1/$m" --layer context "$2/data/test" "$1/$m/extract_test"; done
' _ "$exp" "$db"
run_stage 5 "Evaluate: DIM, autoencoder, MFCC, fbank -> $exp/eval/table.md" bash -c '
  set -e
  for m in dim autoencoder; do
    speechrep eval features --feats "$1/$m/extract_test/feats.scp" --ali "$2/ali/test/phones.ctm" \
      --utt2spk "$2/data/test/utt2spk" --out "$1/eval/$m.json"
  done
  speechrep eval baseline "$2/data/test" --ali "$2/ali/test/phones.ctm" --out "$1/eval/baseline.json"
  ../cpc/local/compare.py --out "$1/eval/table.md" dim="$1/eval/dim.json" autoencoder="$1/eval/autoencoder.json" \
    mfcc="$1/eval/baseline.json" fbank="$1/eval/baseline.json"
' _ "$exp" "$db"
