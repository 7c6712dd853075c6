#!/usr/bin/env bash
# CPC on the embedded synthetic corpus: log-fbank encoder, GRU/LSTM context, InfoNCE.
#
#   ./run.sh [--stage N] [--stop-stage M] [--nj N] [--quick] [--force] [--exp DIR]
#
# Stages (each skipped when done; see recipes/lib.sh):
#   0  corpus: synthetic speech with exact phone alignments -> $DB
#   1  features: Kaldi log-mel filterbanks of train/dev/test -> $DB/data/<set>/feats.scp
#   2  train CPC -> $exp/cpc (resumes a killed run)
#   3  extract context-network features of the test set -> $exp/cpc/extract_test
#   4  evaluate them and the MFCC/fbank baselines (ABX, probes) -> $exp/eval/{cpc,baseline}.json, table.md
# --quick uses the tiny corpus and conf/tiny.yaml (what the tests run).
# The corpus goes to $DB (default $exp/db); set DB to share one between recipes.
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"

if [ "$quick" = true ]; then
  size=tiny; conf=conf/tiny.yaml
else
  size=default; conf=conf/train_cpc.yaml
fi
db=${DB:-$exp/db}
model=$exp/cpc
feats=$model/extract_test

run_stage 0 "Corpus: synthetic speech ($size) -> $db" ../local/data.sh --size "$size" --nj "$nj" "$db"
run_stage 1 "Features: $db/data/{train,dev,test} -> $db/fbank" \
  bash -c 'for s in train dev test; do ../../../recipes/make_feats.sh --nj "$1" "$2/data/$s" "$2/fbank/$s" || exit 1; done' _ "$nj" "$db"
run_stage 2 "Train: $db/data/train -> $model" \
  speechrep train "$conf" --set "exp_dir=$model" --set "data.train=$db/data/train" --set "data.valid=$db/data/dev" --resume
run_stage 3 "Extract: $db/data/test -> $feats" speechrep extract --force --model "$model" --layer context "$db/data/test" "$feats"
run_stage 4 "Evaluate: $feats, MFCC, fbank -> $exp/eval/{cpc,baseline}.json, table.md" bash -c '
  set -e
  speechrep eval features --feats "$1/feats.scp" --ali "$2/ali/test/phones.ctm" --utt2spk "$2/data/test/utt2spk" --out "$3/cpc.json"
  speechrep eval baseline "$2/data/test" --ali "$2/ali/test/phones.ctm" --out "$3/baseline.json"
  local/compare.py --ratio-to mfcc --out "$3/table.md" cpc="$3/cpc.json" mfcc="$3/baseline.json" fbank="$3/baseline.json"
' _ "$feats" "$db" "$exp/eval"
