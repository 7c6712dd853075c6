#!/usr/bin/env bash
# Stages of a voice-conversion recipe (source it after lib.sh and parse_recipe_opts; the
# stage numbers are lib.sh's). Used by egs/synth/vc (three families) and egs/synth/all (one).
#
#   vc_pairs       2:pairs    held-out pairs -> $vexp/pairs.tsv (+ the closed-set scorer's data)
#   vc_scorers     2:scorers  speaker scorer(s) and CTC phone recognisers, up to --nj at once
#   vc_models      3:judge    the speaker model of the VC models' speaker-consistency loss -> $vexp/judge
#                  3:vc       the VC families, up to --nj at once -> $vexp/<family>
#   vc_convert     4:vc       copy synthesis and conversion of every pair -> $vexp/convert/*
#   vc_score       5:vc       scores -> $vexp/scores/*.json, $vexp/eval/vc.json, $vexp/scores.txt,
#                             the report's examples $vexp/demo_audio.tsv
#   vc_demo_page   6:vc       demo page -> $vexp/demo/index.html
#
# Variables (vc_setup sets them for the full or the --quick recipe; change them after it):
# db (corpus with data/{train,dev,test,test_unseen_spk} and ali/<set>/phones.ctm), size,
# vexp (this recipe's experiment dir), vc_conf (directory of the configs), families,
# vocoders ("griffinlim" and/or "neural"), neural_vocoder, speakers, unseen, per_pair,
# targets, ctc_seeds, closed_scorer (true: also a scorer that has heard the unseen targets),
# and arrays of options: common (every training), spk_opts, ctc_opts, judge_opts, vc_opts,
# vq_opts (vc_vq only), convert_opts, score_opts.
# Every training runs on one CPU thread (the jobs share the cores by running side by side)
# and resumes after a kill.

vc_setup() {  # the settings of the full-size recipe, or of the tiny one with --quick
  closed_scorer=true; families="vc_adain vc_adversarial vc_vq"; vocoders=griffinlim
  size=default; speakers=awb,kal,slt,slt_hts; unseen=ked,rms; targets=2; ctc_seeds="0 1 2"
  per_pair=3  # sentences per ordered speaker pair: 60 pairs, so that one pair moves a rate by < 2 points
  common=(); vc_opts=(); vq_opts=(); spk_opts=(); ctc_opts=(); judge_opts=(); convert_opts=(); score_opts=()
  if [ "$quick" = true ]; then
    size=tiny; speakers=awb,kal16,slt; unseen=rms; per_pair=1; ctc_seeds="0 1"
    common=(--set optim.max_steps=30 --set optim.warmup_steps=5 --set data.crop=8000 --set data.batch_size=4
            --set train.valid_every=30 --set train.ckpt_every=30 --set train.device=cpu --set train.progress=false
            --set train.tensorboard=false)
    # 2 speakers x 2 crops: each crop has another of its speaker (speaker_from: others)
    vc_opts=(--set model.args.channels=16 --set model.args.blocks=1 --set model.args.speaker_dim=8
             --set model.args.min_speaker_frames=20 --set data.speakers_per_batch=2)
    vq_opts=(--set model.args.content_dim=8 --set model.args.bottleneck.num_codes=16 --set model.args.bottleneck.code_dim=8)
    spk_opts=(--set model.args.channels=16 --set model.args.embedding_dim=8 --set model.args.min_frames=20)
    judge_opts=("${spk_opts[@]}")
    ctc_opts=(--set model.args.channels=16 --set model.args.layers=2 --set optim.max_steps=20 --set optim.warmup_steps=0
              --set data.crop=128000 --set data.batch_size=8)
  fi
}

vc_train_job() {  # vc_train_job NAME CONFIG [--set ...]: speechrep train -> $vexp/NAME
  local name=$1 config=$2
  shift 2
  speechrep train "$config" --set "exp_dir=$vexp/$name" --set "data.train=$db/data/train" \
    --set "data.valid=$db/data/dev" "$@" --set train.num_threads=1 --resume
}
_vc_pairs() {  # _vc_pairs SPEAKERS UNSEEN PER_PAIR TARGETS CLOSED
  speechrep data make-pairs --speakers "$1" --unseen "$2" --per-pair "$3" --targets "$4" \
    --unused-out "$vexp/data/heldout_unused" --ctm "$db/ali/test/phones.ctm" \
    --ctm "$db/ali/test_unseen_spk/phones.ctm" "$vexp/pairs.tsv" "$db/data/test" "$db/data/test_unseen_spk"
  if [ "$5" = true ]; then
    # the closed-set scorer's data: the training set and the held-out utterances that no pair
    # uses, so that it has heard the unseen target speakers too (but not the pairs' audio)
    local closed=("$db/data/train")
    [ -d "$vexp/data/heldout_unused" ] && closed+=("$vexp/data/heldout_unused")  # none left in tiny corpora
    speechrep data combine "$vexp/data/train_closed" "${closed[@]}"
  fi
}
vc_pairs() {
  run_stage 2:pairs "Pairs: $db/data/{test,test_unseen_spk} -> $vexp/pairs.tsv" --clean "$vexp/data" \
    _vc_pairs "$speakers" "$unseen" "$per_pair" "$targets" "$closed_scorer"
}
vc_scorers() {
  local jobs=("vc_train_job speaker $vc_conf/speaker.yaml ${common[*]} ${spk_opts[*]}") seed
  for seed in $ctc_seeds; do  # one phone recogniser per seed, trained on the phones of the CTMs
    jobs+=("vc_train_job phone_ctc/seed$seed $vc_conf/phone_ctc.yaml --set train.seed=$seed \
--set data.phones=[$db/ali/train/phones.ctm,$db/ali/dev/phones.ctm] ${common[*]} ${ctc_opts[*]}")
  done
  [ "$closed_scorer" = true ] && jobs+=("vc_train_job speaker_closed $vc_conf/speaker.yaml ${common[*]} \
${spk_opts[*]} --set data.train=$vexp/data/train_closed")
  run_stage 2:scorers "Scorers (up to $nj at once): speaker, phone recognisers (seeds $ctc_seeds) -> $vexp" \
    --clean "$vexp/speaker" --clean "$vexp/speaker_closed" --clean "$vexp/phone_ctc" run_parallel "${jobs[@]}"
}
vc_models() {
  run_stage 3:judge "Judge: $db/data/train -> $vexp/judge" --clean "$vexp/judge" \
    vc_train_job judge "$vc_conf/judge.yaml" "${common[@]}" "${judge_opts[@]}"
  local jobs=() f clean=() extra
  for f in $families; do  # the longest first
    extra=; if [ "$f" = vc_vq ]; then extra="${vq_opts[*]}"; fi
    jobs+=("vc_train_job $f $vc_conf/$f.yaml ${common[*]} ${vc_opts[*]} $extra \
--set model.args.speaker_loss_model=$vexp/judge")
    clean+=(--clean "$vexp/$f")
  done
  run_stage 3:vc "VC models (up to $nj at once): $families -> $vexp/<family>" "${clean[@]}" run_parallel "${jobs[@]}"
}
vocoder_path() { if [ "$1" = neural ]; then echo "$neural_vocoder"; else echo "$1"; fi; }
_vc_convert() {  # _vc_convert FAMILIES VOCODERS [convert options]
  local families=$1 vocoders=$2 f v
  shift 2
  for v in $vocoders; do
    speechrep convert --force --resynthesize --pairs "$vexp/pairs.tsv" --out-dir "$vexp/convert/resynth_$v" \
      --vocoder "$(vocoder_path "$v")"
    for f in $families; do
      speechrep convert --force --model "$vexp/$f" --pairs "$vexp/pairs.tsv" --out-dir "$vexp/convert/${f}_$v" \
        --vocoder "$(vocoder_path "$v")" "$@"
    done
  done
}
vc_convert() {
  run_stage 4:vc "Copy synthesis and conversion ($families x $vocoders): -> $vexp/convert/*" --clean "$vexp/convert" \
    _vc_convert "$families" "$vocoders" "${convert_opts[@]}"
}
_vc_score() {  # _vc_score FAMILIES VOCODERS CLOSED [eval vc options]
  local families=$1 vocoders=$2 closed=$3 f v
  shift 3
  for f in $families; do
    for v in $vocoders; do
      speechrep eval vc --pairs "$vexp/pairs.tsv" --converted "$vexp/convert/${f}_$v" --speaker-model "$vexp/speaker" \
        --resynth "$vexp/convert/resynth_$v" --out "$vexp/scores/${f}_$v.json" --name "${f}+$v" --enrol-targets 2 \
        --seen-data "$db/data/train" "$@"
      # speaker scores only: the phone and F0 scores do not depend on the speaker scorer
      [ "$closed" = true ] && speechrep eval vc --pairs "$vexp/pairs.tsv" --converted "$vexp/convert/${f}_$v" \
        --speaker-model "$vexp/speaker_closed" --out "$vexp/scores_closed/${f}_$v.json" --name "${f}+$v" \
        --enrol-targets 2 --seen-data "$db/data/train" --no-f0 > /dev/null
    done
  done
  speechrep eval collect-vc "$vexp/scores" "$vexp/eval/vc.json" "$vexp/scores.txt"
  if [ "$closed" = true ]; then
    echo "Scored by the closed-set scorer ($vexp/speaker_closed, which has heard every target speaker):"
    speechrep eval collect-vc "$vexp/scores_closed" "$vexp/scores_closed.json" "$vexp/scores_closed.txt"
  fi
  speechrep eval vc-examples "$vexp/pairs.tsv" "$vexp/convert" "$vexp/demo_audio.tsv" --per-kind 2
}
vc_score() {
  local phones=() seed
  for seed in $ctc_seeds; do phones+=(--phone-model "$vexp/phone_ctc/seed$seed"); done
  run_stage 5:vc "Scores: $vexp/convert/* -> $vexp/eval/vc.json, $vexp/scores.txt" \
    --clean "$vexp/scores" --clean "$vexp/scores_closed" \
    _vc_score "$families" "$vocoders" "$closed_scorer" "${phones[@]}" "${score_opts[@]}"
}
_vc_demo_page() {
  speechrep report --force "$vexp" --audio "$vexp/demo_audio.tsv" --out "$vexp/demo"
  printf '<!doctype html><meta charset=utf-8><meta http-equiv="refresh" content="0; url=demo/index.html">'\
'<a href="demo/index.html">voice-conversion demo</a>\n' > "$vexp/demo.html"
}
vc_demo_page() {
  run_stage 6:vc "Demo page: -> $vexp/demo/index.html" _vc_demo_page
}

# Zero-shot kNN conversion (egs/synth/knnvc); $exp/cpc is the feature model. The stages take
# their settings as arguments, so that a change redoes them (their hash holds the arguments).
knn_pairs() {  # knn_pairs SEEN DEV_TARGETS DEV_SETS UNSEEN TEST_SETS MAKE_PAIRS_OPTS: 2 -> $exp/pairs_{dev,test}.tsv
  local seen=$1 sets ctms s part
  for part in "dev $2 $3" "test $4 $5"; do
    read -r name targets sets_ <<< "$part"
    sets=(); ctms=()
    for s in ${sets_//,/ }; do sets+=("$db/data/$s"); ctms+=(--ctm "$db/ali/$s/phones.ctm"); done
    # shellcheck disable=SC2086  # $6: the make-pairs options, one word each
    speechrep data make-pairs --nonparallel --speakers "$seen" --unseen "$targets" $6 "${ctms[@]}" \
      "$exp/pairs_$name.tsv" "${sets[@]}" || return 1
  done
}
knn_convert() {  # knn_convert K VOCODER [CONVERT_OPTION...]: 4, every pair at both layers -> $exp/convert/<set>_<layer>
  local set layer k=$1 vocoder=$2
  shift 2
  for set in dev test; do
    for layer in encoder context; do
      speechrep convert --model "$exp/cpc" --layer "$layer" --k "$k" --vocoder "$vocoder" --pairs "$exp/pairs_$set.tsv" \
        --out-dir "$exp/convert/${set}_$layer" --force "$@" || return 1
    done
  done
}
knn_score() {  # knn_score DEV_SETS TEST_SETS: 5, independent judges -> $exp/eval/<set>_<layer>.json
  local set layer sets judge_data s
  for set in dev test; do
    if [ "$set" = dev ]; then sets=$1; else sets=$2; fi
    # train too: the seen voices have few utterances in the evaluation sets, and a pair's own
    # are never used to enrol its voices
    # (--judge-cache: the voices are enrolled once for the four scorings)
    judge_data=(--judge-data "$db/data/train" --judge-cache "$exp/judge_cache")
    for s in ${sets//,/ }; do judge_data+=(--judge-data "$db/data/$s"); done
    for layer in encoder context; do
      speechrep eval vc --judges independent --pairs "$exp/pairs_$set.tsv" --converted "$exp/convert/${set}_$layer" \
        "${judge_data[@]}" --seen-data "$db/data/train" --no-f0 --name "${set}_$layer" \
        --out "$exp/eval/${set}_$layer.json" || return 1
    done
  done
}

# Real voices (egs/synth/all): one real person's English prompts (Asterisk's Allison, Debian
# asterisk-core-sounds-en-g722, which tools/setup.sh installs when apt can; ASTERISK_SOUNDS and
# ASTERISK_TRANSCRIPTS point elsewhere) converted to and from synthetic voices of the test set by
# the shipped zero-shot model (speechrep convert's default) and the recipe's families -> $rexp.
# Judges: the independent ones when installed (speechrep[judges]), else the in-house speaker scorer.
real_sounds=${ASTERISK_SOUNDS:-/usr/share/asterisk/sounds}; real_transcripts=${ASTERISK_TRANSCRIPTS:-}
real_voice_here() {  # true when the prompts, their transcripts and the G.722 decoder are installed
  local t=core-sounds-en.txt.gz doc=asterisk-core-sounds-en
  [ -d "$real_sounds/en_US_f_Allison" ] && python -c "import G722" 2>/dev/null && { [ -n "$real_transcripts" ] \
    || [ -f "/usr/share/doc/$doc/$t" ] || [ -f "/usr/local/share/doc/$doc/$t" ]; }
}
_real_corpus() {  # _real_corpus N ALIGN: the first N prompts of at least 1.5 s -> $db/data/real
  local opts=(--pack allison_en --min-duration 1.5)
  [ -n "$real_transcripts" ] && opts+=(--transcripts "$real_transcripts")
  speechrep data prepare asterisk "$real_sounds" "$db/real" "${opts[@]}" || return 1
  speechrep data subset "$db/real/data/all" "$db/data/real" --first "$1" || return 1
  if [ "$2" = true ]; then
    speechrep align "$db/data/real" "$db/ali/real_aligned" || return 1
    # the evaluation set: the prompts the aligner aligned (it lists the others: words outside its
    # dictionary, no alignment found)
    LC_ALL=C sort -u <(cut -d' ' -f1 "$db/ali/real_aligned/phones.ctm") > "$db/ali/real_aligned/utts" || return 1
    speechrep data subset "$db/data/real" "$db/data/real_aligned" --utt-list "$db/ali/real_aligned/utts"
  fi
}
real_corpus() {  # real_corpus N ALIGN (true: phone CTM by pocketsphinx -> $db/{data,ali}/real_aligned)
  run_stage 0:real "Real voice: Asterisk's English prompts ($real_sounds) -> $db/data/real" _real_corpus "$1" "$2"
}
_real_pairs() {  # _real_pairs SYNTHETIC PER_PAIR TARGETS -> $rexp/{real2synth,synth2real}/pairs.tsv
  local opts=(--nonparallel --per-pair "$2" --targets "$3" --ctm "$db/ali/test/phones.ctm")
  mkdir -p "$rexp/real2synth" "$rexp/synth2real"
  speechrep data make-pairs "${opts[@]}" --sources allison_en --speakers "$1" "$rexp/real2synth/pairs.tsv" \
    "$db/data/test" "$db/data/real" || return 1
  speechrep data make-pairs "${opts[@]}" --sources "$1" --speakers allison_en "$rexp/synth2real/pairs.tsv" \
    "$db/data/test" "$db/data/real"
}
real_pairs() {  # real_pairs SYNTHETIC PER_PAIR TARGETS
  run_stage 2:real "Pairs: $db/real <-> $1 of $db/data/test -> $rexp/{real2synth,synth2real}" --clean "$rexp" \
    _real_pairs "$@"
}
_real_convert() {  # _real_convert FAMILIES: the shipped zero-shot model (knn, through its packaged neural
  local dir f     # vocoder) and the recipe's families (Griffin-Lim)
  for dir in real2synth synth2real; do
    speechrep convert --force --pairs "$rexp/$dir/pairs.tsv" --out-dir "$rexp/$dir/convert/knn_neural" || return 1
    for f in $1; do
      speechrep convert --force --model "$vexp/$f" --pairs "$rexp/$dir/pairs.tsv" \
        --out-dir "$rexp/$dir/convert/${f}_griffinlim" || return 1
    done
  done
}
real_convert() {
  run_stage 4:real "Convert real <-> synthetic (shipped zero-shot model, $families) -> $rexp/*/convert" \
    _real_convert "$families"
}
_real_score() {  # _real_score FAMILIES JUDGES: independent or inhouse
  local dir s judges
  if [ "$2" = independent ]; then
    # (--judge-cache: the voices are enrolled and the sources transcribed once for all systems)
    judges=(--judges independent --judge-data "$db/data/test" --judge-data "$db/data/real"
      --judge-cache "$rexp/judge_cache")
    # dev too in the tiny corpus: two test utterances per voice, both a pair's targets
    [ "$quick" = true ] && judges+=(--judge-data "$db/data/dev")
  else judges=(--speaker-model "$vexp/speaker" --enrol-targets 2); fi
  rm -rf "$rexp/scores"
  for dir in real2synth synth2real; do
    for s in knn_neural $(printf '%s_griffinlim ' $1); do
      speechrep eval vc --pairs "$rexp/$dir/pairs.tsv" --converted "$rexp/$dir/convert/$s" --no-f0 \
        "${judges[@]}" --name "$dir ${s%_*}+${s##*_}" --out "$rexp/scores/$dir-$s.json" > /dev/null || return 1
    done
    speechrep eval vc-examples "$rexp/$dir/pairs.tsv" "$rexp/$dir/convert" "$rexp/$dir/demo_audio.tsv" --per-kind 2 \
      --real allison_en || return 1
  done
  speechrep eval collect-vc "$rexp/scores" "$rexp/eval/vc.json" "$rexp/scores.txt"
}
real_score() {
  local judges=inhouse
  python -c "import resemblyzer, pocketsphinx" 2>/dev/null && judges=independent
  run_stage 5:real "Scores of real <-> synthetic ($judges judges) -> $rexp/eval/vc.json" _real_score "$families" "$judges"
}
