#!/usr/bin/env bash
# Trees as codes: ListOps-style expressions generated offline with their gold trees; a
# Gumbel Tree-LSTM chooses adjacent merges with straight-through Gumbel-softmax.
# Reports task accuracy (vs the majority class) and unlabeled bracket F1 of the induced
# trees vs gold (vs left-branching, right-branching and random trees).
#
#   bash egs/listops/tree/run.sh [--stage N] [--stop-stage M] [--quick] [--exp DIR]
#
# Outputs: $exp/listops_tree/{results.txt,results.json,config.yaml}.
# --quick runs conf/tiny.yaml (what the tests run).
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
# `speechrep side` when the installed CLI has the group, else the module on its own
side() { speechrep side "$@"; }

config=conf/default.yaml
[ "$quick" = true ] && config=conf/tiny.yaml

run_stage 1 "Generate, train and evaluate: ListOps -> $exp/listops_tree/results.txt" \
  side listops-tree "$config" --set "exp_dir=$exp/listops_tree"
