#!/usr/bin/env bash
# Zero-shot voice conversion by kNN matching (kNN-VC, Baas et al. 2023) in the frame features of
# a CPC model (../cpc/conf/train_cpc.yaml, 3000 steps) trained on the many-voice corpus, vocoded by
# the neural vocoder (../vocoder/conf/vocoder.yaml, iSTFT head) trained on the same data; reproduces
# speechrep/pretrained/knn_vc, the default model of `speechrep convert`.
#
#   ./run.sh [--stage N] [--stop-stage M] [--nj N] [--quick] [--force] [--dry-run] [--exp DIR]
# Environment: DB=DIR reuses a corpus; LAYER (context, chosen on dev through the vocoder), K (4) and
# PITCH_WEIGHT (speechrep convert's default, chosen on dev) of the conversions and the package.
# Stages (recipes/lib.sh numbering): 0 corpus -> $db; 1 fbank features; 2 pairs: dev (English
# sources -> dev voices, to choose the layer) and test (-> voice families never trained on);
# 3 CPC -> $exp/cpc, vocoder -> $exp/vocoder; 4 conversions at both layers -> $exp/convert/<set>_<layer>;
# 5 scores of the independent judges (when installed) -> $exp/eval/<set>_<layer>.json;
# 6 package (CPC, layer, k, pitch weight and vocoder) -> $exp/knn_vc.
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
. ../../../recipes/ssl.sh
. ../../../recipes/vc.sh
. ../../../recipes/vocoder.sh

size=many conf=../cpc/conf/train_cpc.yaml steps=(--set optim.max_steps=3000 --set train.num_threads=1)
layer=${LAYER:-context} k=${K:-4} pitch=${PITCH_WEIGHT:-} seen=awb,kal,slt,slt_hts,allison_en dev_targets=june_fr,allison_es,krb_cs,nsh_ru
dev_sets=dev test_sets=test,test_unseen_family unseen=ked,rms,machac_cs,ivr_ru pairs="--per-pair 3 --targets 8"
voc_opts=(--set train.num_threads=1)
# the tiny corpus has 2 utterances per speaker and set: the pairs draw on two sets
[ "$quick" = true ] && { size=tiny conf=../cpc/conf/tiny.yaml steps=() seen=awb,kal16 dev_targets=slt
                         dev_sets=dev,test test_sets=test,dev unseen=slt pairs="--per-pair 1 --targets 2"
                         voc_opts=("${vocoder_quick[@]}"); }
db=${DB:-$exp/db}
corpus_synth "$size"
fbank_features train dev
run_stage 2 "Pairs: $db/data/{$dev_sets,$test_sets} -> $exp/pairs_{dev,test}.tsv" knn_pairs "$seen" "$dev_targets" \
  "$dev_sets" "$unseen" "$test_sets" "$pairs"
train_model cpc "$conf" "${steps[@]}"
train_model vocoder "$vocoder_conf" "${voc_opts[@]}"
run_stage 4 "Convert: $exp/pairs_{dev,test}.tsv at the encoder and context ($exp/vocoder) -> $exp/convert" \
  knn_convert "$k" "$exp/vocoder" ${pitch:+--pitch-weight "$pitch"}
if python -c "import resemblyzer, pocketsphinx" 2>/dev/null; then
  run_stage 5 "Score (independent judges): $exp/convert -> $exp/eval" knn_score "$dev_sets" "$test_sets"
else echo "Stage 5: skipped: the independent judges are not installed (pip install 'speechrep[judges]')"; fi
run_stage 6 "Package: $exp/cpc ($layer, k=$k) -> $exp/knn_vc" speechrep package-knn --force --layer "$layer" --k "$k" ${pitch:+--pitch-weight "$pitch"} \
  --vocoder "$exp/vocoder" "$exp/cpc" "$exp/knn_vc"
