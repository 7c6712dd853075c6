#!/usr/bin/env bash
# Voice conversion on the embedded corpus: three model families, independent scorers,
# conversion of held-out speaker pairs with Griffin-Lim (and the neural vocoder of
# egs/synth/vocoder when it has been trained), scores and a demo page.
#
# Usage: egs/synth/vc/run.sh [--stage N] [--stop-stage M] [--quick] [--exp DIR] [--nj N] [--force]
#   --quick: tiny corpus and models (what the tests run, a few minutes on CPU)
#   --nj:    trainings run at the same time in stage 1 (one CPU thread each)
# Environment: DB=DIR reuses a corpus; FAMILIES="vc_adain ..." picks the families;
#   VC_F0=false skips the pYIN F0 scores; PAIRS_PER=N sets the sentences per speaker pair
#   (default 3, 1 with --quick); TARGETS=K the target utterances per pair (default 2; K > 2
#   adds utterances to the same two and keeps the sentences; the scorer enrols each speaker
#   from the first two targets whatever K, so that scores stay comparable);
#   MATCH_WEIGHT=W (0-1, default 0) and MATCH_K=K (default 4) turn on frame matching in
#   the conversion (speechrep convert --match-weight, README.md);
#   EXAGGERATE=A (default 0) moves each target's speaker code A times its distance from the
#   training speakers' mean code, away from it (speechrep convert --exaggerate, README.md);
#   VOCODER=DIR names the neural vocoder's experiment (default ../vocoder/exp/vocoder;
#   given, it must exist); SPEAKER_STEPS, CTC_STEPS, JUDGE_STEPS, VC_STEPS override the
#   training steps of the speaker scorer, the phone recognisers, the VC models' judge and the VC models;
#   CTC_SEEDS="0 1 2" (default; "0 1" with --quick) the seeds of the phone recognisers (the PERs
#   are the mean of theirs).
#
# Stages
#   0  corpus: local/data.sh -> $db
#   1  training, up to --nj runs at once (logs in $exp/log/train_<name>.log):
#        speaker-verification scorer (x-vector, AAM): $db/data/train -> $exp/speaker
#        CTC phone recognisers (one per seed of CTC_SEEDS): $db/data/train + phones.ctm
#        -> $exp/phone_ctc/seed<N>
#        VC models vc_adain, vc_adversarial, vc_vq: $db/data/train -> $exp/vc_*
#        (each after the speaker model that judges its training conversions,
#        conf/judge.yaml -> $exp/judge, trained once by the first family's job)
#   2  conversion pairs of held-out sentences: $db/data/{test,test_unseen_spk} -> $exp/pairs.tsv;
#      closed-set speaker scorer: $db/data/train + the held-out utterances no pair uses
#      ($exp/data/heldout_unused) -> $exp/speaker_closed
#   3  copy synthesis (vocoder only): $exp/pairs.tsv -> $exp/convert/resynth_<vocoder>
#   4  conversion: every family x vocoder -> $exp/convert/<family>_<vocoder>
#   5  scores: -> $exp/scores/<family>_<vocoder>.json, $exp/eval/vc.json (all systems), $exp/scores.txt
#      (each system on all pairs, on the targets seen in training and on the unseen ones, and
#      per target speaker); the same by the closed-set scorer -> $exp/scores_closed.txt
#   6  demo page: -> $exp/demo/index.html (and $exp/demo.html pointing at it)
set -euo pipefail
cd "$(dirname "$0")"
. ../../../recipes/lib.sh

db=${DB:-data/synth}  # corpus location (data/ is git-ignored in recipes); DB=... reuses a corpus
neural_vocoder=${VOCODER:-../vocoder/exp/vocoder}  # trained by egs/synth/vocoder/run.sh; used when present
parse_recipe_opts "$@"

families=${FAMILIES:-vc_adain vc_adversarial vc_vq}  # FAMILIES=vc_adain trains one family only
score_opts=()
[ "${VC_F0:-true}" = false ] && score_opts+=(--no-f0)  # VC_F0=false skips the (slow) pYIN F0 scores
if $quick; then
  size=tiny; db=${DB:-data/synth_tiny}
  speakers=awb,kal16,slt; unseen=rms; per_pair=1
  common=(--set optim.max_steps=30 --set optim.warmup_steps=5 --set data.crop=8000 --set data.batch_size=4
          --set train.valid_every=30 --set train.ckpt_every=30 --set train.device=cpu --set train.num_threads=1
          --set train.progress=false --set train.tensorboard=false)
  vc_tiny=(--set model.args.channels=16 --set model.args.blocks=1 --set model.args.speaker_dim=8
           --set model.args.min_speaker_frames=20)
  spk_tiny=(--set model.args.channels=16 --set model.args.embedding_dim=8 --set model.args.min_frames=20)
  ctc_args='{"channels": 16, "layers": 2}'; ctc_steps=20; ctc_seeds="0 1"
  others_tiny=(--set data.speakers_per_batch=2)  # 2 speakers x 2 crops: each crop has another of its speaker
  vq_tiny=(--set model.args.content_dim=8 --set model.args.bottleneck.num_codes=16 --set model.args.bottleneck.code_dim=8)
else
  size=default
  speakers=awb,kal,slt,slt_hts; unseen=ked,rms
  per_pair=3  # sentences per ordered speaker pair: 60 pairs, so that one pair moves a rate by < 2 points
  common=(); vc_tiny=(); spk_tiny=(); vq_tiny=(); others_tiny=()
  # three recognisers, 2000 steps each with the learning rate decayed: the seed of one moves the
  # PER margin of a conversion by up to 2 points (README.md)
  ctc_args='{"channels": 128, "layers": 6}'; ctc_steps=2000; ctc_seeds="0 1 2"
fi
vocoders=griffinlim
if [ -n "${VOCODER:-}" ] && [ ! -e "$neural_vocoder/checkpoints" ]; then
  echo "error: VOCODER=$VOCODER: no checkpoints/ there (a neural vocoder experiment of egs/synth/vocoder)" >&2; exit 1
fi
if [ -e "$neural_vocoder/checkpoints" ]; then
  vocoders="griffinlim neural"
fi
vocoder_path() { if [ "$1" = neural ]; then echo "$neural_vocoder"; else echo "$1"; fi; }

# speaker_tdnn is registered by speechrep.models.speaker: import it before `speechrep train`.
run_stage 0 "Corpus: speechrep data make-synth --size $size -> $db" \
  ../local/data.sh --size "$size" --nj "$nj" "$db"

steps_opt() { if [ -n "${1:-}" ]; then echo "--set optim.max_steps=$1"; fi; }
ctc_steps=${CTC_STEPS:-$ctc_steps}
ctc_seeds=${CTC_SEEDS:-$ctc_seeds}
phone_opts=()
for seed in $ctc_seeds; do phone_opts+=(--phone-model "$exp/phone_ctc/seed$seed"); done
# One thread per training (the runs share the cores by running side by side); resumable.
train_opts=(--set train.num_threads=1 --resume)

train_speaker() {
  speechrep train conf/speaker.yaml --set exp_dir="$exp/speaker" --set data.train="$db/data/train" \
    --set data.valid="$db/data/dev" "${common[@]}" "${spk_tiny[@]}" "${train_opts[@]}" $(steps_opt "${SPEAKER_STEPS:-}")
}
train_ctc() {  # train_ctc SEED (not resumable: a finished one is kept, an unfinished one starts over)
  local dir=$exp/phone_ctc/seed$1
  if [ -e "$dir/checkpoints/step_$ctc_steps" ]; then echo "$dir: trained"; return 0; fi
  python -c 'import json, sys; from speechrep.eval.vc import train_phone_recognizer as t
t(sys.argv[1], sys.argv[2], sys.argv[3], args=json.loads(sys.argv[4]), steps=int(sys.argv[5]), seed=int(sys.argv[6]),
  num_threads=1)' "$db/data/train" "$db/ali/train/phones.ctm" "$dir" "$ctc_args" "$ctc_steps" "$1"
}
train_judge() {  # the speaker model of the VC models' speaker-consistency loss (not the scorer)
  speechrep train conf/judge.yaml --set exp_dir="$exp/judge" --set data.train="$db/data/train" \
    --set data.valid="$db/data/dev" "${common[@]}" "${spk_tiny[@]}" "${train_opts[@]}" $(steps_opt "${JUDGE_STEPS:-}")
}
train_family() {  # train_family NAME
  local extra=()
  if [ "$1" = vc_vq ]; then extra=("${vq_tiny[@]}"); fi
  if grep -q 'speaker_from: others' "conf/$1.yaml"; then extra+=("${others_tiny[@]}"); fi
  if grep -q 'speaker_loss_model:' "conf/$1.yaml"; then
    # one judge for every family: the first job trains it, the others wait for the lock and find it done
    ( flock 9 && train_judge ) 9> "$exp/.judge.lock" || return 1
    extra+=(--set model.args.speaker_loss_model="$exp/judge")
  fi
  speechrep train "conf/$1.yaml" --set exp_dir="$exp/$1" --set data.train="$db/data/train" \
    --set data.valid="$db/data/dev" "${common[@]}" "${vc_tiny[@]}" "${extra[@]}" "${train_opts[@]}" \
    $(steps_opt "${VC_STEPS:-}")
}
trainings=()
for f in $families; do trainings+=("train_family $f"); done  # the longest first
for seed in $ctc_seeds; do trainings+=("train_ctc $seed"); done
trainings+=(train_speaker)
run_stage 1 "Training (up to $nj at once): $families, phone recognisers (seeds $ctc_seeds), speaker scorer -> $exp/{vc_*,phone_ctc,speaker}" \
  run_parallel "${trainings[@]}"

pairs_and_closed_scorer() {
  python local/make_pairs.py --speakers "$speakers" --unseen "$unseen" --per-pair "${PAIRS_PER:-$per_pair}" \
    --targets "${TARGETS:-2}" --unused-out "$exp/data/heldout_unused" \
    --ctm "$db/ali/test/phones.ctm" --ctm "$db/ali/test_unseen_spk/phones.ctm" \
    "$exp/pairs.tsv" "$db/data/test" "$db/data/test_unseen_spk"
  # the closed-set scorer: the training set and the held-out utterances that no pair uses,
  # so that it has heard the unseen target speakers too (but not the pairs' audio)
  local closed=("$db/data/train")
  if [ -d "$exp/data/heldout_unused" ]; then closed+=("$exp/data/heldout_unused"); fi  # none left in tiny corpora
  speechrep data combine "$exp/data/train_closed" "${closed[@]}"
  rm -rf "$exp/speaker_closed"  # its data follow the pairs: no resuming an earlier one
  speechrep train conf/speaker.yaml --set exp_dir="$exp/speaker_closed" --set data.train="$exp/data/train_closed" \
    --set data.valid="$db/data/dev" "${common[@]}" "${spk_tiny[@]}" --set train.num_threads=1 \
    $(steps_opt "${SPEAKER_STEPS:-}")
}
run_stage 2 "Pairs: $db/data/{test,test_unseen_spk} -> $exp/pairs.tsv; closed-set scorer -> $exp/speaker_closed" \
  pairs_and_closed_scorer

resynthesize() {
  for v in $vocoders; do
    speechrep convert --force --resynthesize --pairs "$exp/pairs.tsv" --out-dir "$exp/convert/resynth_$v" \
      --vocoder "$(vocoder_path "$v")"
  done
}
run_stage 3 "Copy synthesis ($vocoders): $exp/pairs.tsv -> $exp/convert/resynth_*" resynthesize

convert_all() {
  for f in $families; do
    for v in $vocoders; do
      speechrep convert --force --model "$exp/$f" --pairs "$exp/pairs.tsv" --out-dir "$exp/convert/${f}_$v" \
        --match-weight "${MATCH_WEIGHT:-0}" --match-k "${MATCH_K:-4}" \
        --exaggerate "${EXAGGERATE:-0}" --population "$db/data/train" \
        --vocoder "$(vocoder_path "$v")"
    done
  done
}
run_stage 4 "Conversion ($families x $vocoders): -> $exp/convert/*" convert_all

score_all() {
  for f in $families; do
    for v in $vocoders; do
      speechrep eval vc --pairs "$exp/pairs.tsv" --converted "$exp/convert/${f}_$v" \
        --speaker-model "$exp/speaker" "${phone_opts[@]}" --resynth "$exp/convert/resynth_$v" \
        --out "$exp/scores/${f}_$v.json" --name "${f}+$v" --enrol-targets 2 --seen-data "$db/data/train" \
        "${score_opts[@]}"
      # speaker scores only: the phone and F0 scores do not depend on the speaker scorer
      speechrep eval vc --pairs "$exp/pairs.tsv" --converted "$exp/convert/${f}_$v" \
        --speaker-model "$exp/speaker_closed" --out "$exp/scores_closed/${f}_$v.json" --name "${f}+$v" \
        --enrol-targets 2 --seen-data "$db/data/train" --no-f0 > /dev/null
    done
  done
  python local/collect_scores.py "$exp/scores" "$exp/eval/vc.json" "$exp/scores.txt"
  python local/collect_scores.py "$exp/scores_closed" "$exp/scores_closed.json" "$exp/scores_closed.txt"
  cat "$exp/scores.txt"
  echo "Scored by the closed-set scorer ($exp/speaker_closed, which has heard every target speaker):"
  cat "$exp/scores_closed.txt"
}
run_stage 5 "Scores: $exp/convert/* -> $exp/scores/*.json, $exp/eval/vc.json, $exp/scores.txt" score_all

demo_page() {
  python local/demo_audio.py "$exp/pairs.tsv" "$exp/convert" "$exp/demo_audio.tsv" --per-kind 2
  speechrep report --force "$exp" --audio "$exp/demo_audio.tsv" --out "$exp/demo"
  printf '<!doctype html><meta charset=utf-8><meta http-equiv="refresh" content="0; url=demo/index.html">'\
'<a href="demo/index.html">voice-conversion demo</a>\n' > "$exp/demo.html"
}
run_stage 6 "Demo page: -> $exp/demo/index.html" demo_page
