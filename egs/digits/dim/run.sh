#!/usr/bin/env bash
# Deep InfoMax on images: scikit-learn's bundled 8x8 digits (no download).
#   DIM with JSD / DV / InfoNCE critics, global and local; the autoencoder (reconstruction
#   critic); VQ / one-hot / binary bottlenecks; linear-probe and k-NN accuracy on a held-out
#   split against PCA, raw pixels and an untrained encoder, mean ± std over seeds.
#
#   bash egs/digits/dim/run.sh [--stage N] [--stop-stage M] [--quick] [--exp DIR]
#
# Outputs: $exp/digits_dim/{results.txt,results.json,config.yaml,plots/*.png}.
# --quick runs conf/tiny.yaml (what the tests run).
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
# `speechrep side` when the installed CLI has the group, else the module on its own
side() { speechrep side "$@"; }

config=conf/default.yaml
[ "$quick" = true ] && config=conf/tiny.yaml

run_stage 1 "Train and probe: sklearn digits -> $exp/digits_dim/results.txt" \
  side digits-dim "$config" --set "exp_dir=$exp/digits_dim"
