#!/usr/bin/env bash
# Stages of the text recipes on the Python documentation that Debian ships (python3.11-doc,
# egs/pydocs/*); source it after lib.sh and parse_recipe_opts (the stage numbers are lib.sh's):
#
#   pydocs_recipe TASK    0  corpus: pages -> sections/paragraphs, train/test split by page
#                            -> $exp/data
#                         3  train and evaluate: `speechrep side TASK` with conf/default.yaml
#                            (--quick: conf/tiny.yaml on 40 pages) -> $exp/TASK/results.txt
#                            (one command trains the encoders and scores them with their baselines)
#
# PYDOCS_ROOT overrides the documentation's location.
pydocs_recipe() {
  local task=$1 root=${PYDOCS_ROOT:-/usr/share/doc/python3.11/html} config=conf/default.yaml prep_opts=()
  if [ "$quick" = true ]; then
    config=conf/tiny.yaml; prep_opts=(--max-docs 40 --subdirs tutorial,library --test-fraction 0.2)
  fi
  run_stage 0 "Corpus: $root -> $exp/data/{train,test}.jsonl" \
    speechrep side prepare-pydocs "$exp/data" --root "$root" "${prep_opts[@]}"
  run_stage 3 "Train and evaluate $task: $exp/data -> $exp/$task/results.txt" \
    speechrep side "$task" "$config" --set "exp_dir=$exp/$task" --set "data_dir=$exp/data"
}
