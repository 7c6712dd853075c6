#!/usr/bin/env bash
# seq2seq2seq on the Python documentation that Debian ships (python3.11-doc).
#   Stage 1: pages -> sections/paragraphs, train/test split by page.
#   Stage 2: paragraph -> short word code -> paragraph, a discriminator against section
#            headings; ROUGE of the codes vs headings and first sentences against lead-N;
#            the same run without the discriminator; example codes.
#
#   bash egs/pydocs/seq2seq2seq/run.sh [--stage N] [--stop-stage M] [--quick] [--exp DIR]
#
# Outputs: $exp/data/{train,test}.jsonl, $exp/seq2seq2seq/{results.txt,results.json,config.yaml}.
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
run_stage 2 "seq2seq2seq: $exp/data -> $exp/seq2seq2seq/results.txt" \
  side seq2seq2seq "$config" --set "exp_dir=$exp/seq2seq2seq" --set "data_dir=$exp/data"
