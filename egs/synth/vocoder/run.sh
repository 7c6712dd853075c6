#!/usr/bin/env bash
# Neural vocoder on the many-voice synthetic corpus (every voice of flite and festival, real
# recordings and pseudo-speakers; ../local/data.sh --size many): train the generator of
# conf/vocoder.yaml (multi-resolution STFT and log-mel losses), optionally the other generator,
# and compare the copy synthesis with Griffin-Lim on held-out
# sentences of the training voices and on voice families never trained on.
# egs/synth/vc/run.sh uses a trained vocoder (VOCODER=..., default exp/vocoder here) when it exists.
#
# Usage: egs/synth/vocoder/run.sh [--stage N] [--stop-stage M] [--quick] [--exp DIR] [--nj N] [--force] [--dry-run]
# Environment: DB=DIR reuses a corpus (default data/many, data/synth_tiny with --quick);
#   SIZE=default trains on the ten-voice default corpus instead;
#   COMPARE=true also trains the other generator (conf/vocoder_hifigan.yaml) and scores it beside.
#
# Stages (recipes/lib.sh numbering)
#   0  corpus: ../local/data.sh -> $db
#   3  train the vocoder: $db/data/train -> $exp/vocoder; with COMPARE=true $exp/vocoder_hifigan
#   5  copy synthesis with Griffin-Lim and the neural vocoder(s): MCD / log-F0 / spectral
#      convergence / real-time factor on $max_utts utterances of $db/data/test -> $exp/resynth;
#      every utterance of $db/data/test_unseen_family (when the corpus has it) -> $exp/resynth_unseen,
#      there also scored by the independent judges when installed (speechrep[judges]: verification
#      as its own voice; WER of the English utterances, those with a phone CTM, beside the originals')
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
. ../../../recipes/vocoder.sh

size=${SIZE:-many}; db=${DB:-data/$size}; max_utts=20; overrides=()
if [ "$quick" = true ]; then
  size=tiny; db=${DB:-data/synth_tiny}; max_utts=2; overrides=("${vocoder_quick[@]}")
fi
vocoders=(griffinlim "$exp/vocoder")

corpus_synth "$size"
train_model vocoder "$vocoder_conf" "${overrides[@]}"
if [ "${COMPARE:-false}" = true ]; then
  vocoders+=("$exp/vocoder_hifigan")
  train_model vocoder_hifigan conf/vocoder_hifigan.yaml "${overrides[@]}"
fi
score_copies() {  # 5: copy synthesis of the seen voices' test sentences and of the unseen families
  local set=$db/data/test_unseen_family judges=()
  speechrep eval resynth --max-utts "$max_utts" "$db/data/test" "$exp/resynth" "${vocoders[@]}" || return 1
  [ -d "$set" ] || return 0
  if python -c "import resemblyzer, pocketsphinx" 2>/dev/null; then
    # the word judge is English: its texts are those of the utterances with a phone CTM
    cut -d' ' -f1 "$db/ali/test_unseen_family/phones.ctm" | sort -u > "$exp/resynth_english_utts" || return 1
    speechrep data subset "$set" "$exp/resynth_english" --utt-list "$exp/resynth_english_utts" || return 1
    judges=(--judges --judge-data "$exp/resynth_english")
  else
    echo "copy synthesis of the unseen families without the independent judges (pip install 'speechrep[judges]')"
  fi
  speechrep eval resynth --max-utts 0 "$set" "$exp/resynth_unseen" "${vocoders[@]}" "${judges[@]}"
}
run_stage 5 "Copy synthesis, Griffin-Lim vs neural: $db/data/{test,test_unseen_family} -> $exp/resynth{,_unseen}" \
  --clean "$exp/resynth" --clean "$exp/resynth_unseen" score_copies
