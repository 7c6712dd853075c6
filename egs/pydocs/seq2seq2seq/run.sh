#!/usr/bin/env bash
# seq2seq2seq on the Python documentation that Debian ships (python3.11-doc).
#   Stage 0 (corpus): pages -> sections/paragraphs, train/test split by page.
#   Stage 3 (train and evaluate): paragraph -> short word code -> paragraph, a discriminator
#            against section headings; ROUGE of the codes vs headings and first sentences
#            against lead-N; the same run without the discriminator; example codes.
#            Stage numbers are those of recipes/lib.sh.
#
#   bash egs/pydocs/seq2seq2seq/run.sh [--stage N] [--stop-stage M] [--quick] [--exp DIR]
#
# Outputs: $exp/data/{train,test}.jsonl, $exp/seq2seq2seq/{results.txt,results.json,config.yaml}.
# --quick: 40 pages and conf/tiny.yaml (what the tests run).
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
. ../../../recipes/pydocs.sh
pydocs_recipe seq2seq2seq
