#!/usr/bin/env bash
# The whole default pipeline on the embedded corpus, ending in exp/report/index.html:
#   bash egs/synth/all/run.sh [--stage N] [--stop-stage M] [--nj N] [--quick] [--dry-run] [--exp DIR]
# Stages (recipes/ssl.sh, recipes/vc.sh; lib.sh numbering): 0 corpus (and a real voice: Asterisk's
# English prompts, when installed, aligned by pocketsphinx when speechrep[judges] is), 1 fbank,
# 2 MFCC/fbank baseline, VC pairs and scorers, 3 CPC, VQ-VAE, VC judge and AdaIN model, 4 features,
# units, conversion (also real <-> synthetic, by the shipped zero-shot model and AdaIN), 5 evaluation
# and VC scores, 6 report. Representations are evaluated on seen voices, unseen voice families and
# real speech side by side (<name>@unseen, <name>@real). A rerun skips what is done with the same options.
# The full demo shows the pipeline in under 15 minutes on an idle 2-core CPU: the step budgets
# below (tests/test_demo_pipeline.py counts them); the full figures come from ../cpc, ../vqvae,
# ../vc. --quick runs the tiny corpus and the recipes' tiny configurations (what the tests use).
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
[ -f cmd.sh ] && . ./cmd.sh
. ../../../recipes/ssl.sh
. ../../../recipes/vc.sh

vc_setup  # then the demo's share: one family, one phone recogniser, no closed-set scorer, no F0
vc_conf=../vc/conf; families=vc_adain; ctc_seeds=0; closed_scorer=false; score_opts=(--no-f0)
cpc=(../cpc/conf/tiny.yaml); vqvae=(../vqvae/conf/tiny.yaml)
if [ "$quick" != true ]; then  # budgets (steps) of the full demo
  per_pair=1
  # CPC and VQ-VAE keep the budgets with which the demo met its unit and ABX targets
  cpc=(../cpc/conf/train_cpc.yaml --set optim.max_steps=700 --set train.valid_every=350 --set train.ckpt_every=175)
  vqvae=(../vqvae/conf/train_vqvae.yaml --set optim.max_steps=1500 --set train.valid_every=500 --set train.ckpt_every=250)
  spk_opts=(--set optim.max_steps=200); ctc_opts=(--set optim.max_steps=250); judge_opts=(--set optim.max_steps=200)
  vc_opts=(--set optim.max_steps=400)
fi
exp=$(realpath -m "$exp"); vexp=$exp/vc; rexp=$exp/real; db=$(realpath -m "${DB:-$exp/db}")
real=false; real_voice_here && real=true
real_ali=false; [ "$real" = true ] && python -c "import pocketsphinx" 2>/dev/null && real_ali=true
# representations are evaluated on seen voices (test), voice families never trained on
# (test_unseen_spk: ked, rms) and, when aligned, real speech
eval_sets=(:test unseen:test_unseen_spk); [ "$real_ali" = true ] && eval_sets+=(real:real_aligned)

report() {  # the HTML report of everything in $exp
  speechrep report --force "$exp" --data "$db/data/test" --ali "$db/ali/test/phones.ctm" --units "$exp/vqvae/units_test/units.txt" \
    --unit-frame-shift "$(cat "$exp/vqvae/units_test/frame_shift")" \
    --unit-frame-offset "$(cat "$exp/vqvae/units_test/frame_offset")" --audio "$vexp/demo_audio.tsv" \
    $([ "$real" = true ] && echo --audio "$rexp/real2synth/demo_audio.tsv" --audio "$rexp/synth2real/demo_audio.tsv")
}
corpus_synth "$size"
if [ "$real" = true ]; then real_corpus "$([ "$quick" = true ] && echo 6 || echo 40)" "$real_ali"; else echo "Real voice:"\
  "left out (asterisk-core-sounds-en-g722, its transcripts or the g722 decoder are missing: bash tools/setup.sh"\
  "installs them when apt can)"; fi
[ "$real" = true ] && [ "$real_ali" = false ] && echo "Real voice: not in the phone-discovery tables (no phone"\
  "alignment without pocketsphinx: pip install 'speechrep[judges]')"
fbank_features train dev "${eval_sets[@]#*:}"
each_set baseline; vc_pairs; vc_scorers; [ "$real" = false ] || real_pairs awb,slt 2 4
train_model cpc "${cpc[@]}"; train_model vqvae "${vqvae[@]}"; vc_models
each_set extract_context cpc; each_set extract_units vqvae; vc_convert; [ "$real" = false ] || real_convert
each_set eval_features cpc; each_set eval_units vqvae; vc_score; [ "$real" = false ] || real_score
run_stage 6 "Report: $exp -> $exp/report/index.html" report

if [ -f "$exp/report/index.html" ]; then
  echo; echo "Stage times (s):"; column -t -s $'\t' "$exp/stage_times.tsv"; echo "Report: $exp/report/index.html"
fi
