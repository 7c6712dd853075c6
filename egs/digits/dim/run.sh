#!/usr/bin/env bash
# Deep InfoMax on images: scikit-learn's bundled 8x8 digits (no download).
#   DIM with JSD / DV / InfoNCE critics, global and local; the autoencoder (reconstruction
#   critic); VQ / one-hot / binary bottlenecks; linear-probe and k-NN accuracy on a held-out
#   split against PCA, raw pixels and an untrained encoder, mean ± std over seeds.
#   One stage, 3 (train and evaluate; the stage numbers of recipes/lib.sh): the corpus ships
#   with scikit-learn, and one command trains every variant and probes it.
#
#   bash egs/digits/dim/run.sh [--stage N] [--stop-stage M] [--quick] [--exp DIR]
#
# Outputs: $exp/digits_dim/{results.txt,results.json,config.yaml,plots/*.png}.
# --quick runs conf/tiny.yaml (what the tests run).
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"

config=conf/default.yaml
[ "$quick" = true ] && config=conf/tiny.yaml

run_stage 3 "Train and evaluate: sklearn digits -> $exp/digits_dim/results.txt" \
  speechrep side digits-dim "$config" --set "exp_dir=$exp/digits_dim"
