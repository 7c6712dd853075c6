#!/usr/bin/env bash
# CPC on the embedded synthetic corpus: log-fbank encoder, GRU/LSTM context, InfoNCE.
#
#   ./run.sh [--stage N] [--stop-stage M] [--nj N] [--quick] [--force] [--dry-run] [--exp DIR]
#
# Stages (recipes/lib.sh numbering; each skipped when done with the same options):
#   0  corpus: synthetic speech with exact phone alignments -> $DB
#   1  features: Kaldi log-mel filterbanks of train/dev/test/test_unseen_spk -> $DB/data/<set>/feats.scp
#   2  MFCC/fbank baselines on the test set (seen voices) and test_unseen_spk (voice families never
#      trained on) -> $exp/eval/baseline.json, baseline@unseen.json
#   3  train CPC -> $exp/cpc (resumes a killed run)
#   4  extract context-network features of both sets -> $exp/cpc/extract_<set>
#   5  evaluate them (ABX, probes) -> $exp/eval/cpc.json, cpc@unseen.json
#   6  table of CPC against the baselines on both sets -> $exp/eval/table.md
# --quick uses the tiny corpus and conf/tiny.yaml (what the tests run).
# The corpus goes to $DB (default $exp/db); set DB to share one between recipes.
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
. ../../../recipes/ssl.sh

synth_ssl_start conf/train_cpc.yaml
train_model cpc "$conf"
each_set extract_context cpc
each_set eval_features cpc
results_table --ratio-to mfcc cpc mfcc fbank cpc@unseen mfcc@unseen fbank@unseen
