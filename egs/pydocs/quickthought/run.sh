#!/usr/bin/env bash
# Quick Thought on the Python documentation that Debian ships (python3.11-doc).
#   Stage 0 (corpus): pages -> sections/paragraphs, train/test split by page.
#   Stage 3 (train and evaluate): encoders f, g with in-batch candidates; next-sentence
#            retrieval against TF-IDF, mean word vectors, an untrained encoder and chance;
#            the no-negatives collapse. Stage numbers are those of recipes/lib.sh.
#
#   bash egs/pydocs/quickthought/run.sh [--stage N] [--stop-stage M] [--quick] [--exp DIR]
#
# Outputs: $exp/data/{train,test}.jsonl, $exp/quickthought/{results.txt,results.json,config.yaml}.
# --quick: 40 pages and conf/tiny.yaml (what the tests run).
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
. ../../../recipes/pydocs.sh
pydocs_recipe quickthought
