#!/usr/bin/env bash
# VQ-CPC unit discovery on the embedded synthetic corpus.
#
#   ./run.sh [--stage N] [--stop-stage M] [--nj N] [--quick] [--force] [--exp DIR]
#
# Stages (each skipped when done; see recipes/lib.sh):
#   0  corpus: synthetic speech with exact phone alignments -> $DB
#   1  features: Kaldi log-mel filterbanks of train/dev/test -> $DB/data/<set>/feats.scp
#   2  train VQ-CPC (feature encoder -> vector quantizer -> context network, InfoNCE)
#   3  frame-level units (codebook indices), deduplicated units and boundaries of the test set
#   4  phone-discovery evaluation of the units (ABX, PNMI, bitrate, boundaries)
# --quick uses the tiny corpus and conf/tiny.yaml (what the tests run).
# The corpus goes to $DB (default $exp/db); set DB to share one between recipes.
# Stage 3 writes duration-penalised units (DPDP, speechrep units --segment-penalty) with
# penalty 0.25 (none with --quick); SEGMENT_PENALTY=P sets it, SEGMENT_PENALTY=none gives
# the nearest code per frame (rerun with --stage 3 --force after a first run).
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"

if [ "$quick" = true ]; then
  size=tiny; conf=conf/tiny.yaml; penalty=none
else
  # segment penalty chosen on the dev set: the smallest of 0, 0.25, 0.5 whose units meet the
  # issue's four bounds there (nearest-code units: PNMI 0.494 on dev; README.md of ../vqvae)
  size=default; conf=conf/train_vqcpc.yaml; penalty=0.25
fi
db=${DB:-$exp/db}
model=$exp/vqcpc
units=$model/units_test

run_stage 0 "Corpus: synthetic speech ($size) -> $db" ../local/data.sh --size "$size" --nj "$nj" "$db"
run_stage 1 "Features: $db/data/{train,dev,test} -> $db/fbank" \
  bash -c 'for s in train dev test; do ../../../recipes/make_feats.sh --nj "$1" "$2/data/$s" "$2/fbank/$s" || exit 1; done' _ "$nj" "$db"
run_stage 2 "Train: $db/data/train -> $model" \
  speechrep train "$conf" --set "exp_dir=$model" --set "data.train=$db/data/train" --set "data.valid=$db/data/dev"
units_opts=()  # duration-penalised units (speechrep units --segment-penalty P) unless the penalty is none
penalty=${SEGMENT_PENALTY:-$penalty}
[ "$penalty" != none ] && units_opts=(--segment-penalty "$penalty")
run_stage 3 "Units: $db/data/test -> $units" speechrep units --force --model "$model" "${units_opts[@]}" "$db/data/test" "$units"
run_stage 4 "Evaluate: $units/units.txt -> $model/eval_units_test.json" \
  bash -c 'speechrep eval units --units "$1/units.txt" --ali "$2/ali/test/phones.ctm" --utt2spk "$2/data/test/utt2spk" \
             --codebook-size "$(cat "$1/num_codes")" --out "$3"' _ "$units" "$db" "$model/eval_units_test.json"
