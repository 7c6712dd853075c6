#!/usr/bin/env bash
# VQ-VAE unit discovery on the embedded synthetic corpus.
#
#   ./run.sh [--stage N] [--stop-stage M] [--nj N] [--quick] [--force] [--dry-run] [--exp DIR]
#
# Stages (recipes/lib.sh numbering; each skipped when done with the same options):
#   0  corpus: synthetic speech with exact phone alignments -> $DB
#   3  train the VQ-VAE (log-mel -> 20 ms codes -> speaker-conditioned decoder) -> $exp/vqvae
#   4  frame-level units, deduplicated units and boundaries of the test set (seen voices) and of
#      test_unseen_spk (voice families never trained on) -> $exp/vqvae/units_<set>
#   5  phone-discovery evaluation of the units (ABX, PNMI, bitrate, boundaries) -> $exp/eval/vqvae_units{,@unseen}.json
#   7  ablation: one-hot vs binary vs VQ bottlenecks at equal bits per frame -> $exp/ablation
# --quick uses the tiny corpus and conf/tiny.yaml (what the tests run).
# The corpus goes to $DB (default $exp/db); set DB to share one between recipes.
# SEGMENT_PENALTY=P makes stage 4 write duration-penalised units (DPDP; none, the default:
# nearest code per frame); a rerun with another penalty redoes stage 4 and what follows.
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
. ../../../recipes/ssl.sh

size=default; conf=conf/train_vqvae.yaml; bits=4,6,8; ablation_opts=()
if [ "$quick" = true ]; then
  size=tiny; conf=conf/tiny.yaml; bits=2
  ablation_opts=(--set optim.max_steps=10 --set train.valid_every=10 --set train.ckpt_every=10)
fi
db=${DB:-$exp/db}
units_opts=()
[ "${SEGMENT_PENALTY:-none}" != none ] && units_opts=(--segment-penalty "$SEGMENT_PENALTY")

corpus_synth "$size"
train_model vqvae "$conf"
each_set extract_units vqvae "${units_opts[@]}"
each_set eval_units vqvae
run_stage 7 "Ablation: one-hot vs binary vs VQ at $bits bits -> $exp/ablation/ablation.json" --clean "$exp/ablation" \
  speechrep ablation "$conf" "$db/ali/test/phones.ctm" "$exp/ablation" --eval-data "$db/data/test" --bits "$bits" \
    --set "data.train=$db/data/train" --set "data.valid=$db/data/dev" "${ablation_opts[@]}"
