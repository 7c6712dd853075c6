#!/usr/bin/env bash
# VQ-VAE unit discovery on the embedded synthetic corpus.
#
#   ./run.sh [--stage N] [--stop-stage M] [--nj N] [--quick] [--force] [--exp DIR]
#
# Stages (each skipped when done; see recipes/lib.sh):
#   0  corpus: synthetic speech with exact phone alignments -> $DB
#   1  train the VQ-VAE (log-mel -> 20 ms codes -> speaker-conditioned decoder)
#   2  frame-level units, deduplicated units and boundaries of the test set
#   3  phone-discovery evaluation of the units (ABX, PNMI, bitrate, boundaries)
#   4  ablation: one-hot vs binary vs VQ bottlenecks at equal bits per frame
# --quick uses the tiny corpus and conf/tiny.yaml (what the tests run).
# The corpus goes to $DB (default $exp/db); set DB to share one between recipes.
# SEGMENT_PENALTY=P makes stage 2 write duration-penalised units (DPDP; none, the default:
# nearest code per frame; rerun it with --stage 2 --force after a first run).
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"

if [ "$quick" = true ]; then
  size=tiny; conf=conf/tiny.yaml; bits=2
  ablation_opts=(--set optim.max_steps=10 --set train.valid_every=10 --set train.ckpt_every=10)
else
  size=default; conf=conf/train_vqvae.yaml; bits=4,6,8
  ablation_opts=()
fi
db=${DB:-$exp/db}
model=$exp/vqvae
units=$model/units_test
data_opts=(--set "data.train=$db/data/train" --set "data.valid=$db/data/dev")

run_stage 0 "Corpus: synthetic speech ($size) -> $db" ../local/data.sh --size "$size" --nj "$nj" "$db"
run_stage 1 "Train: $db/data/train -> $model" speechrep train "$conf" --set "exp_dir=$model" "${data_opts[@]}"
units_opts=()  # SEGMENT_PENALTY=P: duration-penalised units (speechrep units --segment-penalty P)
penalty=${SEGMENT_PENALTY:-none}
[ "$penalty" != none ] && units_opts=(--segment-penalty "$penalty")
run_stage 2 "Units: $db/data/test -> $units" speechrep units --force --model "$model" "${units_opts[@]}" "$db/data/test" "$units"
run_stage 3 "Evaluate: $units/units.txt -> $model/eval_units_test.json" \
  bash -c 'speechrep eval units --units "$1/units.txt" --ali "$2/ali/test/phones.ctm" --utt2spk "$2/data/test/utt2spk" \
             --codebook-size "$(cat "$1/num_codes")" --out "$3"' _ "$units" "$db" "$model/eval_units_test.json"
run_stage 4 "Ablation: one-hot vs binary vs VQ at $bits bits -> $exp/ablation/ablation.json" \
  speechrep ablation "$conf" "$db/ali/test/phones.ctm" "$exp/ablation" --eval-data "$db/data/test" --bits "$bits" \
  "${data_opts[@]}" "${ablation_opts[@]}"
