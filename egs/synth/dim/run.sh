#!/usr/bin/env bash
# Deep InfoMax and its autoencoder special case on the embedded synthetic corpus.
#
#   ./run.sh [--stage N] [--stop-stage M] [--nj N] [--quick] [--force] [--dry-run] [--exp DIR]
#
# Stages (recipes/lib.sh numbering; each skipped when done with the same options):
#   0  corpus: synthetic speech with exact phone alignments -> $DB
#   1  features: Kaldi log-mel filterbanks of train/dev/test/test_unseen_spk -> $DB/data/<set>/feats.scp
#   2  MFCC/fbank baselines on the test set (seen voices) and test_unseen_spk (voice families never
#      trained on) -> $exp/eval/baseline.json, baseline@unseen.json
#   3  train DIM -> $exp/dim, and the autoencoder (the same config with the reconstruction
#      critic and the positive estimator) -> $exp/autoencoder
#   4  extract frame codes of both sets with both models
#   5  evaluate both -> $exp/eval/{dim,autoencoder}{,@unseen}.json
#   6  one table of both and the baselines on both sets -> $exp/eval/table.md
# --quick uses the tiny corpus and conf/tiny.yaml (what the tests run).
# The corpus goes to $DB (default $exp/db); set DB to share one between recipes.
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
. ../../../recipes/ssl.sh

synth_ssl_start conf/train_dim.yaml
train_model dim "$conf"
train_model autoencoder "$conf" --set model.args.critic=reconstruction --set model.args.estimator=positive
for m in dim autoencoder; do each_set extract_context $m; done
for m in dim autoencoder; do each_set eval_features $m; done
results_table dim autoencoder mfcc fbank dim@unseen autoencoder@unseen mfcc@unseen fbank@unseen
