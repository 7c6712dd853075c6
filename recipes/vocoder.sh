#!/usr/bin/env bash
# The neural vocoder's settings shared by recipes (source it after lib.sh): egs/synth/vocoder trains
# and compares vocoders; egs/synth/knnvc trains the one it packages with the default kNN model.
#
#   vocoder_conf   the default generator's config (iSTFT head, egs/synth/vocoder/conf/vocoder.yaml)
#   vocoder_quick  --set options of the tiny --quick vocoder (any generator), seconds on a CPU
vocoder_conf=$SPEECHREP_ROOT/egs/synth/vocoder/conf/vocoder.yaml
vocoder_quick=(--set optim.max_steps=20 --set optim.warmup_steps=5 --set data.batch_size=2 --set data.crop=4000
               --set model.args.channels=16 --set model.args.layers=2 --set model.args.resblock_kernel_sizes=[3]
               --set model.args.resblock_dilations=[1]
               --set train.valid_every=20 --set train.ckpt_every=20 --set train.device=cpu --set train.progress=false
               --set train.tensorboard=false)
