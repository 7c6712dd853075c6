#!/usr/bin/env bash
# The whole default pipeline on the embedded corpus, ending in an HTML report:
#   corpus -> features -> MFCC/fbank baseline -> CPC -> VQ-VAE units -> phone-discovery
#   evaluation -> voice conversion -> `speechrep convert` on held-out pairs -> VC scores -> report
#
#   bash egs/synth/all/run.sh [--stage N] [--stop-stage M] [--nj N] [--quick]
#
# Outputs (relative to this directory): db/ (corpus), data/ (feature data dirs), exp/ (runs,
# eval/*.json, report/index.html). Every stage leaves exp/.done/stage_N and is skipped on a
# rerun, so a killed run resumes where it stopped; training stages resume from their last
# checkpoint. --quick runs the tiny corpus and configs (what the tests use).
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
[ -f cmd.sh ] && . ./cmd.sh

size=default
conf=conf
if [ "$quick" = true ]; then size=tiny; conf=conf/quick; fi
db=db
splits="train dev test test_unseen_spk"

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
  for kind in fbank mfcc; do
    for s in $splits; do
      rm -rf "data/$kind/$s"; mkdir -p "data/$kind"
      cp -r "$db/data/$s" "data/$kind/$s"
      rm -f "data/$kind/$s/feats.scp" "data/$kind/$s/utt2num_frames"
      speechrep features make-$kind "data/$kind/$s" "$exp/make_$kind/$s" --nj "$nj" --cmd "$cmd" \
        --config "$conf/$kind.yaml"
    done
  done
}

train() {  # train NAME CONFIG: resumable training into exp/NAME
  local name=$1 config=$2
  if [ -e "$exp/$name/checkpoints" ]; then
    speechrep train "$config" --set "exp_dir=$exp/$name" --resume
  else
    speechrep train "$config" --set "exp_dir=$exp/$name"
  fi
}

eval_cpc() {
  speechrep extract --model "$exp/cpc" --layer context data/fbank/test "$exp/cpc/extract_test"
  speechrep eval features --feats "$exp/cpc/extract_test/feats.scp" --ali "$db/ali/test/phones.ctm" \
    --utt2spk "$db/data/test/utt2spk" --out "$exp/eval/cpc.json"
}

eval_units() {
  speechrep units --model "$exp/vqvae" data/fbank/test "$exp/vqvae/units_test"
  speechrep eval units --units "$exp/vqvae/units_test/units.txt" --frame-shift "$(cat "$exp/vqvae/units_test/frame_shift")" \
    --ali "$db/ali/test/phones.ctm" --utt2spk "$db/data/test/utt2spk" --out "$exp/eval/vqvae.json"
}

report() {
  local extra=()
  [ -f "$exp/vqvae/units_test/units.txt" ] && extra+=(--units "$exp/vqvae/units_test/units.txt"
    --unit-frame-shift "$(cat "$exp/vqvae/units_test/frame_shift")")
  [ -f "$exp/vc/converted/report.tsv" ] && extra+=(--audio "$exp/vc/converted/report.tsv")
  speechrep report "$exp" --data "$db/data/test" --ali "$db/ali/test/phones.ctm" "${extra[@]}"
}

stage_if 0 "Corpus: synthesizers -> $db/data/{${splits// /,}}" "data make-synth" \
  bash ../local/data.sh --size "$size" --nj "$nj" "$db"
stage_if 1 "Features: $db/data/* -> data/{fbank,mfcc}/*" "features make-fbank" features
stage_if 2 "Baseline: MFCC and fbank on $db/data/test -> $exp/eval/baseline.json" "eval baseline" \
  speechrep eval baseline "$db/data/test" --ali "$db/ali/test/phones.ctm" --out "$exp/eval/baseline.json"
stage_if 3 "CPC: data/fbank/train -> $exp/cpc" "train" train cpc "$conf/cpc.yaml"
stage_if 4 "CPC evaluation: $exp/cpc -> $exp/eval/cpc.json" "extract" eval_cpc
stage_if 5 "VQ-VAE: data/fbank/train -> $exp/vqvae" "train" train vqvae "$conf/vqvae.yaml"
stage_if 6 "Units: $exp/vqvae -> $exp/eval/vqvae.json" "units" eval_units
stage_if 7 "Voice conversion model: $db/data/train -> $exp/vc" "convert" train vc "$conf/vc.yaml"
stage_if 8 "Convert held-out pairs: $db/data/test_unseen_spk -> $exp/vc/converted" "convert" convert_pairs
stage_if 9 "VC scores: $exp/vc/converted -> $exp/eval/vc.json" "eval vc" score_vc
stage_if 10 "Report: $exp -> $exp/report/index.html" "report" report

echo
echo "Stage times (s):"
column -t -s $'\t' "$exp/stage_times.tsv" 2>/dev/null || cat "$exp/stage_times.tsv"
[ -f "$exp/report/index.html" ] && echo "Report: $(pwd)/$exp/report/index.html"
