#!/usr/bin/env bash
# Voice conversion on the embedded corpus: three model families, independent scorers,
# conversion of held-out speaker pairs with Griffin-Lim (and the neural vocoder of
# egs/synth/vocoder when it has been trained), scores and a demo page.
#
# Usage: egs/synth/vc/run.sh [--stage N] [--stop-stage M] [--quick] [--exp DIR] [--nj N] [--force] [--dry-run]
#   --quick: tiny corpus and models (what the tests run, a few minutes on CPU)
#   --nj:    trainings run at the same time (one CPU thread each)
# Environment: DB=DIR reuses a corpus; FAMILIES="vc_adain ..." picks the families;
#   VC_F0=false skips the pYIN F0 scores; PAIRS_PER=N sets the sentences per speaker pair
#   (default 3, 1 with --quick); TARGETS=K the target utterances per pair (default 2; K > 2
#   adds utterances to the same two and keeps the sentences; the scorer enrols each speaker
#   from the first two targets whatever K, so that scores stay comparable);
#   MATCH_WEIGHT=W, MATCH_K=K (speechrep convert --match-weight/--match-k) and EXAGGERATE=A
#   (--exaggerate, population: the training set) change the conversion (README.md);
#   VOCODER=DIR names the neural vocoder's experiment (default ../vocoder/exp/vocoder, used
#   when present; given, it must exist); SPEAKER_STEPS, CTC_STEPS, JUDGE_STEPS, VC_STEPS set
#   the training steps of the speaker scorers, the phone recognisers, the VC models' judge and
#   the VC models; CTC_SEEDS="0 1 2" (default; "0 1" with --quick) the seeds of the phone
#   recognisers (the PERs are the mean of theirs).
#
# Stages (recipes/vc.sh, recipes/lib.sh numbering): 0 corpus -> $db; 2 pairs, speaker scorer,
# closed-set scorer (has heard the unseen targets), phone recognisers; 3 judge, then the VC
# models; 4 copy synthesis and conversion; 5 scores ($exp/scores.txt, $exp/eval/vc.json);
# 6 demo page ($exp/demo/index.html). Logs of the parallel trainings: $exp/log/<job>.log.
cd "$(dirname "$0")"
. ../../../recipes/lib.sh
parse_recipe_opts "$@"
. ../../../recipes/vc.sh

vc_setup
vexp=$exp; vc_conf=conf; families=${FAMILIES:-$families}
db=${DB:-data/synth}; [ "$quick" = true ] && db=${DB:-data/synth_tiny}
neural_vocoder=${VOCODER:-../vocoder/exp/vocoder}
if [ -n "${VOCODER:-}" ] && [ ! -e "$VOCODER/checkpoints" ]; then
  echo "error: VOCODER=$VOCODER: no checkpoints/ there (a neural vocoder experiment of egs/synth/vocoder)" >&2; exit 1
fi
[ -e "$neural_vocoder/checkpoints" ] && vocoders="griffinlim neural"
steps() { if [ -n "${1:-}" ]; then echo "--set optim.max_steps=$1"; fi; }
spk_opts+=($(steps "${SPEAKER_STEPS:-}")); ctc_opts+=($(steps "${CTC_STEPS:-}"))
judge_opts+=($(steps "${JUDGE_STEPS:-}")); vc_opts+=($(steps "${VC_STEPS:-}"))
targets=${TARGETS:-2}; per_pair=${PAIRS_PER:-$per_pair}; ctc_seeds=${CTC_SEEDS:-$ctc_seeds}
[ "${VC_F0:-true}" = false ] && score_opts=(--no-f0)
[ -n "${MATCH_WEIGHT:-}" ] && convert_opts+=(--match-weight "$MATCH_WEIGHT" --match-k "${MATCH_K:-4}")
[ -n "${EXAGGERATE:-}" ] && convert_opts+=(--exaggerate "$EXAGGERATE" --population "$db/data/train")

corpus_synth "$size"
vc_pairs; vc_scorers; vc_models; vc_convert; vc_score; vc_demo_page
