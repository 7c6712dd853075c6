#!/usr/bin/env bash
# CPC on the embedded synthetic corpus: log-fbank encoder, GRU/LSTM context, InfoNCE.
#
#   ./run.sh [--stage N] [--stop-stage M] [--nj N] [--quick] [--force] [--dry-run] [--exp DIR]
#
# Stages (recipes/lib.sh numbering; each skipped when done with the same options):
#   0  corpus: synthetic speech with exact phone alignments -> $DB
#   1  features: Kaldi log-mel filterbanks of train/dev/test -> $DB/data/<set>/feats.scp
#   2  MFCC/fbank baselines on the test set -> $exp/eval/baseline.json
#   3  train CPC -> $exp/cpc (resumes a killed run)
#   4  extract context-network features of the test set -> $exp/cpc/extract_test
#   5  evaluate them (ABX, probes) -> $exp/eval/cpc.json
#   6  table of CPC against the baselines -> $exp/eval/table.md
# --quick uses the tiny corpus and conf/tiny.yaml (what the tests run).
# The corpus goes to $DB (default $exp/db); set DB to share one between recipes.
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
. ../../../recipes/ssl.sh

synth_ssl_start conf/train_cpc.yaml
train_model cpc "$conf"
extract_context cpc test
eval_features cpc test
results_table --ratio-to mfcc cpc mfcc fbank
