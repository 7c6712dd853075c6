#!/usr/bin/env bash
# VQ-CPC unit discovery on the embedded synthetic corpus.
#
#   ./run.sh [--stage N] [--stop-stage M] [--nj N] [--quick] [--force] [--dry-run] [--exp DIR]
#
# Stages (recipes/lib.sh numbering; each skipped when done with the same options):
#   0  corpus: synthetic speech with exact phone alignments -> $DB
#   1  features: Kaldi log-mel filterbanks of train/dev/test/test_unseen_spk -> $DB/data/<set>/feats.scp
#   3  train VQ-CPC (feature encoder -> vector quantizer -> context network, InfoNCE) -> $exp/vqcpc
#   4  frame-level units (codebook indices), deduplicated units and boundaries of the test set (seen
#      voices) and of test_unseen_spk (voice families never trained on)
#   5  phone-discovery evaluation of the units (ABX, PNMI, bitrate, boundaries) -> $exp/eval/vqcpc_units{,@unseen}.json
# --quick uses the tiny corpus and conf/tiny.yaml (what the tests run).
# The corpus goes to $DB (default $exp/db); set DB to share one between recipes.
# Stage 4 writes duration-penalised units (DPDP, speechrep units --segment-penalty) with
# penalty 0.25 (none with --quick); SEGMENT_PENALTY=P sets it, SEGMENT_PENALTY=none gives
# the nearest code per frame (a rerun with another penalty redoes stage 4 and what follows).
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
. ../../../recipes/ssl.sh

# segment penalty chosen on the dev set: the smallest of 0, 0.25, 0.5 whose units meet the
# issue's four bounds there (nearest-code units: PNMI 0.494 on dev; README.md of ../vqvae)
size=default; conf=conf/train_vqcpc.yaml; penalty=0.25
[ "$quick" = true ] && { size=tiny; conf=conf/tiny.yaml; penalty=none; }
db=${DB:-$exp/db}
penalty=${SEGMENT_PENALTY:-$penalty}
units_opts=()
[ "$penalty" != none ] && units_opts=(--segment-penalty "$penalty")

corpus_synth "$size"
fbank_features train dev "${eval_sets[@]#*:}"
train_model vqcpc "$conf"
each_set extract_units vqcpc "${units_opts[@]}"
each_set eval_units vqcpc
