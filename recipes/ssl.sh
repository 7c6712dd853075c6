#!/usr/bin/env bash
# Stages of a self-supervised representation recipe (source it after lib.sh and
# parse_recipe_opts; the stage numbers are lib.sh's):
#
#   corpus_synth tiny                           0    corpus -> $db
#   fbank_features train dev test               1    Kaldi log-mel fbank -> $db/data/<set>/feats.scp
#   baseline test                               2    MFCC and fbank -> $exp/eval/baseline.json
#   train_model cpc conf/x.yaml [--set ...]     3    -> $exp/cpc (lib.sh)
#   extract_context cpc test                    4    context features -> $exp/cpc/extract_test
#   extract_units vqvae [--segment-penalty P] test   4    -> $exp/vqvae/units_test
#   eval_features cpc test [CTM]                5    ABX, probes -> $exp/eval/cpc.json
#   eval_units vqvae test [CTM]                 5    ABX, PNMI, bitrate -> $exp/eval/vqvae_units.json
#   results_table [--ratio-to mfcc] cpc mfcc    6    Markdown table -> $exp/eval/table.md
#   each_set eval_features cpc                  5    the same on every set of eval_sets (tagged)
#
#   synth_ssl_start conf/x.yaml                 0-2  the three above on the embedded corpus (each_set)
#
# Variables: db (corpus), exp; a set's alignment is $db/ali/<set>/phones.ctm unless given.
# eval_tag: empty, or a tag that names the results of another evaluation set beside the main
# one (eval/<name>@<tag>.json, stages <n>:<name>@<tag>; e.g. unseen voices, real speech).
eval_tag=
# eval_sets: the "TAG:SET" list of each_set; the embedded corpus's: seen voices, then the voice
# families never trained on
eval_sets=(:test unseen:test_unseen_spk)

# synth_ssl_start FULL_CONF: stages 0-2 on the embedded corpus, default size with FULL_CONF
# (--quick: the tiny corpus and conf/tiny.yaml); sets size, conf and db (DB shares a corpus)
synth_ssl_start() {
  size=default; conf=$1
  [ "$quick" = true ] && { size=tiny; conf=conf/tiny.yaml; }
  db=${DB:-$exp/db}
  corpus_synth "$size"
  fbank_features train dev "${eval_sets[@]#*:}"
  each_set baseline
}

# fbank_features SET...: stage 1
fbank_features() {
  run_stage 1 "Features: $db/data/{$(IFS=,; echo "$*")} -> $db/fbank" _fbank_sets "$@"
}
_fbank_sets() {
  local s
  for s in "$@"; do
    "$SPEECHREP_ROOT/recipes/make_feats.sh" --nj "$nj" --cmd "$cmd" "$db/data/$s" "$db/fbank/$s"
  done
}

tagged() { echo "$1${eval_tag:+@$eval_tag}"; }  # tagged NAME: NAME, or NAME@TAG
# each_set FUNCTION [ARG...]: FUNCTION ARG... SET for every "TAG:SET" of eval_sets (":test" is the
# main set, untagged), with eval_tag set to TAG
each_set() {
  local s
  for s in "${eval_sets[@]}"; do eval_tag=${s%%:*}; "$@" "${s#*:}"; done
  eval_tag=
}

# baseline SET: stage 2
baseline() {
  local out; out=$exp/eval/$(tagged baseline).json
  run_stage "$(tagged 2:baseline)" "Baseline: MFCC and fbank on $db/data/$1 -> $out" \
    speechrep eval baseline "$db/data/$1" --ali "$db/ali/$1/phones.ctm" --out "$out"
}

# extract_context NAME SET: stage 4
extract_context() {
  run_stage "$(tagged "4:$1")" "Extract: $exp/$1 on $db/data/$2 -> $exp/$1/extract_$2" \
    speechrep extract --force --model "$exp/$1" --layer context "$db/data/$2" "$exp/$1/extract_$2"
}

# extract_units NAME [units options] SET: stage 4 (the set last, as each_set gives it)
extract_units() {
  local name=$1 set=${!#}
  set -- "${@:2:$#-2}"
  run_stage "$(tagged "4:$name")" "Units: $exp/$name on $db/data/$set -> $exp/$name/units_$set" \
    speechrep units --force --model "$exp/$name" "$@" "$db/data/$set" "$exp/$name/units_$set"
}

# eval_features NAME SET [CTM [eval options]]: stage 5
eval_features() {
  local name=$1 set=$2 ctm=${3:-$db/ali/$2/phones.ctm} out
  shift $(($# < 3 ? $# : 3))
  out=$exp/eval/$(tagged "$name").json
  run_stage "$(tagged "5:$name")" "Evaluate: $exp/$name/extract_$set -> $out" \
    speechrep eval features --feats "$exp/$name/extract_$set/feats.scp" --ali "$ctm" \
      --utt2spk "$db/data/$set/utt2spk" "$@" --out "$out"
}

# eval_units NAME SET [CTM]: stage 5
eval_units() {
  local out; out=$exp/eval/$(tagged "$1_units").json
  run_stage "$(tagged "5:$1")" "Evaluate: $exp/$1/units_$2 -> $out" \
    _eval_units "$exp/$1/units_$2" "${3:-$db/ali/$2/phones.ctm}" "$db/data/$2/utt2spk" "$out"
}
_eval_units() {  # the codebook size is read when the stage runs
  speechrep eval units --units "$1/units.txt" --ali "$2" --utt2spk "$3" --codebook-size "$(cat "$1/num_codes")" \
    --out "$4"
}

# results_table [--ratio-to NAME] NAME...: stage 6; mfcc and fbank come from the baseline (NAME@TAG:
# the results of the evaluation set tagged TAG)
results_table() {
  local opts=() results=() name
  if [ "${1:-}" = --ratio-to ]; then opts=(--ratio-to "$2"); shift 2; fi
  for name in "$@"; do
    case "${name%%@*}" in  # mfcc@unseen: from baseline@unseen.json
      mfcc|fbank) results+=("$name=$exp/eval/baseline${name/#${name%%@*}/}.json") ;;
      *) results+=("$name=$exp/eval/$name.json") ;;
    esac
  done
  run_stage 6:table "Table: $* -> $exp/eval/table.md" speechrep eval table "${opts[@]}" --out "$exp/eval/table.md" \
    "${results[@]}"
}
