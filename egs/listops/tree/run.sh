#!/usr/bin/env bash
# Trees as codes: ListOps-style expressions generated offline with their gold trees; a
# Gumbel Tree-LSTM chooses adjacent merges with straight-through Gumbel-softmax.
# Reports task accuracy (vs the majority class) and unlabeled bracket F1 of the induced
# trees vs gold (vs left-branching, right-branching and random trees).
# One stage, 3 (train and evaluate; the stage numbers of recipes/lib.sh): one command
# generates the expressions from the config's seed, trains the model and scores it.
#
#   bash egs/listops/tree/run.sh [--stage N] [--stop-stage M] [--quick] [--exp DIR]
#
# Outputs: $exp/listops_tree/{results.txt,results.json,config.yaml}.
# --quick runs conf/tiny.yaml (what the tests run).
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"

config=conf/default.yaml
[ "$quick" = true ] && config=conf/tiny.yaml

run_stage 3 "Generate, train and evaluate: ListOps -> $exp/listops_tree/results.txt" \
  speechrep side listops-tree "$config" --set "exp_dir=$exp/listops_tree"
