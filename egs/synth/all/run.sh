#!/usr/bin/env bash
# The whole default pipeline on the embedded corpus, ending in an HTML report:
#   corpus -> fbank features -> MFCC/fbank baseline -> CPC -> VQ-VAE units -> phone-discovery
#   evaluation -> voice conversion (models, `speechrep convert` on held-out pairs, scores)
#   -> exp/report/index.html
#
#   bash egs/synth/all/run.sh [--stage N] [--stop-stage M] [--nj N] [--quick] [--exp DIR]
#
# The stages reuse the task recipes' configurations (../cpc, ../vqvae, ../vc) with training
# budgets sized for a 2-core CPU. Outputs (relative to this directory): exp/db (corpus and
# features), exp/<model>/ (runs), exp/eval/*.json, exp/report/index.html. Every stage leaves
# exp/.done/stage_N and is skipped on a rerun, so a killed run resumes where it stopped;
# training stages resume from their last checkpoint. --quick runs the tiny corpus and the
# recipes' tiny configurations (what the tests use).
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
[ -f cmd.sh ] && . ./cmd.sh

if [ "$quick" = true ]; then
  size=tiny
  cpc=(../cpc/conf/tiny.yaml)
  vqvae=(../vqvae/conf/tiny.yaml)
  vc_opts=(--quick)
  vc_env=(VC_F0=false)
else
  size=default
  # Training budgets for <= 15 minutes on 2 CPU cores (the task recipes train longer):
  # measured per-stage times are in exp/stage_times.tsv after a run.
  cpc=(../cpc/conf/train_cpc.yaml --set train.ckpt_every=175)  # its own 700 steps
  vqvae=(../vqvae/conf/train_vqvae.yaml --set optim.max_steps=1500 --set train.valid_every=500 --set train.ckpt_every=250)
  vc_opts=()
  vc_env=(SPEAKER_STEPS=400 CTC_STEPS=400 VC_STEPS=600)
fi
exp=$(realpath -m "$exp")  # absolute: the nested VC recipe runs from its own directory
db=$(realpath -m "${DB:-$exp/db}")

# A stage whose command this installation lacks is reported and skipped, never faked.
stage_if() {  # stage_if N "desc" "speechrep subcommand words" command...
  local n=$1 desc=$2 sub=$3
  shift 3
  if has_command $sub; then
    run_stage "$n" "$desc" "$@"
  elif [ "$n" -ge "$stage" ] && [ "$n" -le "$stop_stage" ]; then
    echo "Stage $n: $desc: not available in this installation (speechrep $sub); skipped"
  fi
}

features() {
  for s in train dev test; do
    ../../../recipes/make_feats.sh --nj "$nj" --cmd "$cmd" "$db/data/$s" "$db/fbank/$s"
  done
}

train() {  # train NAME CONFIG [--set ...]: resumable training into exp/NAME
  local name=$1
  shift
  speechrep train "$@" --set "exp_dir=$exp/$name" --set "data.train=$db/data/train" \
    --set "data.valid=$db/data/dev" --resume
}

eval_cpc() {
  speechrep extract --force --model "$exp/cpc" --layer context "$db/data/test" "$exp/cpc/extract_test"
  speechrep eval features --feats "$exp/cpc/extract_test/feats.scp" --ali "$db/ali/test/phones.ctm" \
    --utt2spk "$db/data/test/utt2spk" --out "$exp/eval/cpc.json"
}

eval_units() {
  speechrep units --force --model "$exp/vqvae" "$db/data/test" "$exp/vqvae/units_test"
  speechrep eval units --units "$exp/vqvae/units_test/units.txt" --ali "$db/ali/test/phones.ctm" \
    --utt2spk "$db/data/test/utt2spk" --codebook-size "$(cat "$exp/vqvae/units_test/num_codes")" \
    --out "$exp/eval/vqvae_units.json"
}

report() {
  local extra=()
  if [ -f "$exp/vqvae/units_test/units.txt" ]; then
    extra+=(--units "$exp/vqvae/units_test/units.txt" --unit-frame-shift "$(cat "$exp/vqvae/units_test/frame_shift")"
      --unit-frame-offset "$(cat "$exp/vqvae/units_test/frame_offset")")
  fi
  if [ -f "$exp/vc/demo_audio.tsv" ]; then
    extra+=(--audio "$exp/vc/demo_audio.tsv")
  fi
  speechrep report --force "$exp" --data "$db/data/test" --ali "$db/ali/test/phones.ctm" "${extra[@]}"
}

stage_if 0 "Corpus: synthesizers ($size) -> $db/data/{train,dev,test,test_unseen_spk}" "data make-synth" \
  ../local/data.sh --size "$size" --nj "$nj" "$db"
stage_if 1 "Features: $db/data/{train,dev,test} -> log-fbank feats.scp" "features make-fbank" features
stage_if 2 "Baseline: MFCC and fbank on $db/data/test -> $exp/eval/baseline.json" "eval baseline" \
  speechrep eval baseline "$db/data/test" --ali "$db/ali/test/phones.ctm" --out "$exp/eval/baseline.json"
stage_if 3 "CPC: $db/data/train -> $exp/cpc" "train" train cpc "${cpc[@]}"
stage_if 4 "CPC evaluation: $exp/cpc -> $exp/eval/cpc.json" "extract" eval_cpc
stage_if 5 "VQ-VAE: $db/data/train -> $exp/vqvae" "train" train vqvae "${vqvae[@]}"
stage_if 6 "Units: $exp/vqvae -> $exp/eval/vqvae_units.json" "units" eval_units
# One family (AdaIN, zero-shot) keeps the demo within its budget; ../vc/run.sh trains all three.
stage_if 7 "Voice conversion (AdaIN): $db -> $exp/vc (scorers, model, convert, scores)" "eval vc" \
  env DB="$db" FAMILIES=vc_adain "${vc_env[@]}" bash ../vc/run.sh --exp "$exp/vc" --nj "$nj" "${vc_opts[@]}"
stage_if 8 "Report: $exp -> $exp/report/index.html" "report" report

echo
echo "Stage times (s):"
column -t -s $'\t' "$exp/stage_times.tsv" 2>/dev/null || cat "$exp/stage_times.tsv"
if [ -f "$exp/report/index.html" ]; then echo "Report: $exp/report/index.html"; fi
