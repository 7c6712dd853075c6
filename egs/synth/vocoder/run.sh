#!/usr/bin/env bash
# Neural vocoder on the embedded corpus: train the compact HiFi-GAN-style generator
# (multi-resolution STFT loss), optionally fine-tune it adversarially (HiFi-GAN's
# discriminators), and compare the copy synthesis with Griffin-Lim.
# egs/synth/vc/run.sh uses a trained vocoder (VOCODER=..., default exp/vocoder here) when it exists.
#
# Usage: egs/synth/vocoder/run.sh [--stage N] [--stop-stage M] [--quick] [--exp DIR] [--nj N] [--force]
# Environment: DB=DIR reuses a corpus (default data/synth, data/synth_tiny with --quick);
#   ADVERSARIAL=true runs stage 2 (off by default: at a CPU budget of a few thousand steps it
#   made the copy synthesis worse, README.md).
#
# Stages
#   0  corpus: ../local/data.sh -> $db
#   1  train the vocoder: $db/data/train -> $exp/vocoder
#   2  with ADVERSARIAL=true: adversarial fine-tuning (conf/vocoder_gan.yaml, from $exp/vocoder)
#      -> $exp/vocoder_gan
#   3  copy synthesis of held-out utterances with Griffin-Lim and the neural vocoder(s),
#      MCD / log-F0 / spectral convergence / real-time factor: $db/data/test -> $exp/resynth
set -euo pipefail
cd "$(dirname "$0")"
. ../../../recipes/lib.sh

db=${DB:-data/synth}  # corpus location (data/ is git-ignored in recipes); DB=... reuses a corpus
parse_recipe_opts "$@"

if $quick; then
  size=tiny; db=${DB:-data/synth_tiny}; max_utts=2
  overrides=(--set optim.max_steps=20 --set optim.warmup_steps=5 --set data.batch_size=2 --set data.crop=4000
             --set model.args.channels=16 --set model.args.resblock_kernel_sizes=[3] --set model.args.resblock_dilations=[1]
             --set train.valid_every=20 --set train.ckpt_every=20 --set train.device=cpu --set train.progress=false
             --set train.tensorboard=false)
  gan_overrides=(--set model.args.disc_channels=2 --set model.args.disc_periods=[2,3] --set model.args.disc_scales=1)
else
  size=default; max_utts=20
  overrides=(); gan_overrides=()
fi

run_stage 0 "Corpus: speechrep data make-synth --size $size -> $db" \
  ../local/data.sh --size "$size" --nj "$nj" "$db"

run_stage 1 "Neural vocoder: $db/data/train -> $exp/vocoder" \
  speechrep train conf/vocoder.yaml --set exp_dir="$exp/vocoder" --set data.train="$db/data/train" \
    --set data.valid="$db/data/dev" "${overrides[@]}"

vocoders=(griffinlim "$exp/vocoder")
if [ "${ADVERSARIAL:-false}" = true ]; then
  vocoders+=("$exp/vocoder_gan")
  run_stage 2 "Adversarial fine-tuning: $exp/vocoder -> $exp/vocoder_gan" \
    speechrep train conf/vocoder_gan.yaml --set exp_dir="$exp/vocoder_gan" --set data.train="$db/data/train" \
      --set data.valid="$db/data/dev" --set train.init_from="$exp/vocoder" "${overrides[@]}" "${gan_overrides[@]}"
fi

run_stage 3 "Copy synthesis, Griffin-Lim vs neural: $db/data/test -> $exp/resynth" \
  python local/score_resynth.py --max-utts "$max_utts" "$db/data/test" "$exp/resynth" "${vocoders[@]}"
