#!/usr/bin/env bash
# Neural vocoder on the embedded corpus: train the compact HiFi-GAN-style generator
# (multi-resolution STFT loss), optionally fine-tune it adversarially (HiFi-GAN's
# discriminators), and compare the copy synthesis with Griffin-Lim.
# egs/synth/vc/run.sh uses a trained vocoder (VOCODER=..., default exp/vocoder here) when it exists.
#
# Usage: egs/synth/vocoder/run.sh [--stage N] [--stop-stage M] [--quick] [--exp DIR] [--nj N] [--force] [--dry-run]
# Environment: DB=DIR reuses a corpus (default data/synth, data/synth_tiny with --quick);
#   ADVERSARIAL=true also trains the adversarial fine-tuning (off by default: at a CPU budget
#   of a few thousand steps it made the copy synthesis worse, README.md).
#
# Stages (recipes/lib.sh numbering)
#   0  corpus: ../local/data.sh -> $db
#   3  train the vocoder: $db/data/train -> $exp/vocoder; with ADVERSARIAL=true then the
#      adversarial fine-tuning (conf/vocoder_gan.yaml, from $exp/vocoder) -> $exp/vocoder_gan
#   5  copy synthesis of held-out utterances with Griffin-Lim and the neural vocoder(s),
#      MCD / log-F0 / spectral convergence / real-time factor: $db/data/test -> $exp/resynth
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"

size=default; db=${DB:-data/synth}; max_utts=20; overrides=(); gan_overrides=()
if [ "$quick" = true ]; then
  size=tiny; db=${DB:-data/synth_tiny}; max_utts=2
  overrides=(--set optim.max_steps=20 --set optim.warmup_steps=5 --set data.batch_size=2 --set data.crop=4000
             --set model.args.channels=16 --set model.args.resblock_kernel_sizes=[3] --set model.args.resblock_dilations=[1]
             --set train.valid_every=20 --set train.ckpt_every=20 --set train.device=cpu --set train.progress=false
             --set train.tensorboard=false)
  gan_overrides=(--set model.args.disc_channels=2 --set model.args.disc_periods=[2,3] --set model.args.disc_scales=1)
fi
vocoders=(griffinlim "$exp/vocoder")

corpus_synth "$size"
train_model vocoder conf/vocoder.yaml "${overrides[@]}"
if [ "${ADVERSARIAL:-false}" = true ]; then
  vocoders+=("$exp/vocoder_gan")
  train_model vocoder_gan conf/vocoder_gan.yaml --set "train.init_from=$exp/vocoder" "${overrides[@]}" "${gan_overrides[@]}"
fi
run_stage 5 "Copy synthesis, Griffin-Lim vs neural: $db/data/test -> $exp/resynth" --clean "$exp/resynth" \
  speechrep eval resynth --max-utts "$max_utts" "$db/data/test" "$exp/resynth" "${vocoders[@]}"
