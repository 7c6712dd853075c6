#!/usr/bin/env bash
# CPC (CPC_audio sizes) on LibriSpeech waveforms.
#
#   LIBRISPEECH=/path/to/LibriSpeech ./run.sh [--stage N] [--stop-stage M] [--nj N] [--quick] [--force] [--exp DIR]
#
# Environment:
#   LIBRISPEECH  the LibriSpeech directory as distributed (SPEAKERS.TXT, train-clean-100/, ...)
#   SUBSETS      subsets to prepare (default train-clean-100,dev-clean,test-clean)
#   TRAIN, VALID, EVAL  data sets (default train_clean_100, dev_clean, dev_clean)
#   ABX_ITEMS    optional folder of ZeroSpeech 2021 / Libri-Light ABX .item files
#   ALI          optional phone CTM of the EVAL set (e.g. from a forced aligner); stage 3
#                evaluates only when it is given, LibriSpeech itself has no phone times
#
# Stages (each skipped when done; see recipes/lib.sh):
#   0  prepare LibriSpeech -> $exp/librispeech/data/<set> (+ $exp/librispeech/abx/*.item)
#   1  train CPC on 16 kHz waveform -> $exp/cpc (resumes a killed run)
#   2  extract context-network features of EVAL -> $exp/cpc/extract_$EVAL
#   3  evaluate them (ABX, probes) -> $exp/eval/cpc_$EVAL.json
# --quick uses conf/tiny.yaml (what the tests run on a fixture tree).
#
# Multi-GPU / multi-node: run stage 1 under torchrun, e.g. on Slurm
#   srun torchrun --nnodes "$SLURM_NNODES" --nproc_per_node 4 --rdzv_backend c10d \
#     --rdzv_endpoint "$MASTER_ADDR:29500" -m speechrep train conf/train_cpc.yaml --set exp_dir=exp/cpc ...
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"

: "${LIBRISPEECH:?set LIBRISPEECH to the LibriSpeech directory}"
subsets=${SUBSETS:-train-clean-100,dev-clean,test-clean}
train_set=${TRAIN:-train_clean_100}
valid_set=${VALID:-dev_clean}
eval_set=${EVAL:-dev_clean}
conf=conf/train_cpc.yaml
[ "$quick" = true ] && conf=conf/tiny.yaml
db=$exp/librispeech
model=$exp/cpc
feats=$model/extract_$eval_set
abx=()
[ -n "${ABX_ITEMS:-}" ] && abx=(--abx-items "$ABX_ITEMS")

run_stage 0 "Prepare: $LIBRISPEECH ($subsets) -> $db" \
  speechrep data prepare librispeech "$LIBRISPEECH" "$db" --subsets "$subsets" "${abx[@]}"
run_stage 1 "Train: $db/data/$train_set -> $model" \
  speechrep train "$conf" --set "exp_dir=$model" --set "data.train=$db/data/$train_set" \
    --set "data.valid=$db/data/$valid_set" --resume
run_stage 2 "Extract: $db/data/$eval_set -> $feats" \
  speechrep extract --force --model "$model" --layer context "$db/data/$eval_set" "$feats"
if [ -n "${ALI:-}" ]; then
  items=()
  item_file=$db/abx/${eval_set//_/-}.item
  [ -f "$item_file" ] && items=(--items "$item_file")
  run_stage 3 "Evaluate: $feats -> $exp/eval/cpc_$eval_set.json" \
    speechrep eval features --feats "$feats/feats.scp" --ali "$ALI" --utt2spk "$db/data/$eval_set/utt2spk" \
      "${items[@]}" --out "$exp/eval/cpc_$eval_set.json"
else
  echo "Stage 3: evaluation skipped: set ALI to a phone CTM of $eval_set"
fi
