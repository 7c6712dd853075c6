#!/usr/bin/env bash
# Quick Thought on the Python documentation that Debian ships (python3.11-doc).
#   Stage 1: pages -> sections/paragraphs, train/test split by page.
#   Stage 2: encoders f, g with in-batch candidates; next-sentence retrieval against TF-IDF,
#            mean word vectors, an untrained encoder and chance; the no-negatives collapse.
#
#   bash egs/pydocs/quickthought/run.sh [--stage N] [--stop-stage M] [--quick] [--exp DIR]
#
# Outputs: $exp/data/{train,test}.jsonl, $exp/quickthought/{results.txt,results.json,config.yaml}.
# --quick: 40 pages and conf/tiny.yaml (what the tests run).
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
# `speechrep side` when the installed CLI has the group, else the module on its own
side() { speechrep side "$@"; }

root=${PYDOCS_ROOT:-/usr/share/doc/python3.11/html}
config=conf/default.yaml
prep_opts=()
if [ "$quick" = true ]; then config=conf/tiny.yaml; prep_opts=(--max-docs 40 --subdirs tutorial,library --test-fraction 0.2); fi

run_stage 1 "Data: $root -> $exp/data/{train,test}.jsonl" \
  side prepare-pydocs "$exp/data" --root "$root" "${prep_opts[@]}"
run_stage 2 "Quick Thought: $exp/data -> $exp/quickthought/results.txt" \
  side quickthought "$config" --set "exp_dir=$exp/quickthought" --set "data_dir=$exp/data"
