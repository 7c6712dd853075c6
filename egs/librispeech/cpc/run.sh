#!/usr/bin/env bash
# CPC (CPC_audio sizes) on LibriSpeech waveforms.
#
#   LIBRISPEECH=/path/to/LibriSpeech ./run.sh [--stage N] [--stop-stage M] [--nj N] [--quick] [--force] [--dry-run] [--exp DIR]
#
# Environment:
#   LIBRISPEECH  the LibriSpeech directory as distributed (SPEAKERS.TXT, train-clean-100/, ...)
#   SUBSETS      subsets to prepare (default train-clean-100,dev-clean,test-clean)
#   TRAIN, VALID, EVAL  data sets (default train_clean_100, dev_clean, dev_clean)
#   ABX_ITEMS    optional folder of ZeroSpeech 2021 / Libri-Light ABX .item files
#   ALI          optional phone CTM of the EVAL set (e.g. from a forced aligner); stage 5
#                evaluates only when it is given, LibriSpeech itself has no phone times
#
# Stages (recipes/lib.sh numbering; each skipped when done with the same options):
#   0  prepare LibriSpeech -> $exp/librispeech/data/<set> (+ $exp/librispeech/abx/*.item)
#   3  train CPC on 16 kHz waveform -> $exp/cpc (resumes a killed run)
#   4  extract context-network features of EVAL -> $exp/cpc/extract_$EVAL
#   5  evaluate them (ABX, probes) -> $exp/eval/cpc.json
# --quick uses conf/tiny.yaml (what the tests run on a fixture tree).
#
# Multi-GPU / multi-node: run stage 3 under torchrun, e.g. on Slurm
#   srun torchrun --nnodes "$SLURM_NNODES" --nproc_per_node 4 --rdzv_backend c10d \
#     --rdzv_endpoint "$MASTER_ADDR:29500" -m speechrep train conf/train_cpc.yaml --set exp_dir=exp/cpc ...
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
. ../../../recipes/ssl.sh

: "${LIBRISPEECH:?set LIBRISPEECH to the LibriSpeech directory}"
subsets=${SUBSETS:-train-clean-100,dev-clean,test-clean}
train_set=${TRAIN:-train_clean_100}; valid_set=${VALID:-dev_clean}; eval_set=${EVAL:-dev_clean}
conf=conf/train_cpc.yaml
[ "$quick" = true ] && conf=conf/tiny.yaml
db=$exp/librispeech
abx=(); items=()
[ -n "${ABX_ITEMS:-}" ] && abx=(--abx-items "$ABX_ITEMS")

run_stage 0 "Prepare: $LIBRISPEECH ($subsets) -> $db" --clean "$db" \
  speechrep data prepare librispeech "$LIBRISPEECH" "$db" --subsets "$subsets" "${abx[@]}"
train_model cpc "$conf"
extract_context cpc "$eval_set"
[ -f "$db/abx/${eval_set//_/-}.item" ] && items=(--items "$db/abx/${eval_set//_/-}.item")  # made by stage 0
if [ -n "${ALI:-}" ]; then eval_features cpc "$eval_set" "$ALI" "${items[@]}"
else echo "Stage 5: evaluation skipped: set ALI to a phone CTM of $eval_set"; fi
