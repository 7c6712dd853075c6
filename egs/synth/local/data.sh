#!/usr/bin/env bash
# Generate the embedded synthetic corpus (egs/synth) with `speechrep data make-synth`.
#
# Usage: local/data.sh [--size tiny|small|default|many|large] [--nj N] [--seed S] [--frame-labels] <out-dir>
#   e.g. local/data.sh --size default --nj 2 db/synth
# Writes <out-dir>/data/{train,dev,test,test_unseen_spk}, <out-dir>/ali/<split>/phones.ctm,
# phones.txt and stats.json (see local/README.md); skipped when <out-dir>/.done exists.
# many/large (the many-voice corpus, test_unseen_family instead of test_unseen_spk) need
# more packages than the ones below: 'bash tools/setup.sh --voices' (make-synth names them).
# Missing Debian packages are installed with apt-get when running as root or with
# password-less sudo; otherwise the script stops and names them.
set -euo pipefail

size=default
nj=2
seed=0
frame_labels=
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --size) size=$2; shift 2 ;;
    --nj) nj=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --frame-labels) frame_labels=--frame-labels; shift ;;
    *) echo "$0: unknown option $1" >&2; exit 1 ;;
  esac
done
if [[ $# -ne 1 ]]; then
  sed -n '4,5p' "$0" >&2
  exit 1
fi
out=$1

if [[ -f $out/.done ]]; then
  echo "$0: $out already done, skipping"
  exit 0
fi

# The tiny size uses flite only; the others also festival and its voices.
packages=(flite fortunes)
checks=("command -v flite" "test -f /usr/share/games/fortunes/wisdom")
if [[ $size != tiny ]]; then
  packages+=(festival festvox-kdlpc16k festvox-kallpc16k festvox-us-slt-hts)
  checks+=("command -v festival" "test -d /usr/share/festival/voices/english/ked_diphone"
           "test -d /usr/share/festival/voices/english/kal_diphone"
           "test -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts")
fi
missing=()
for i in "${!packages[@]}"; do
  eval "${checks[$i]}" >/dev/null 2>&1 || missing+=("${packages[$i]}")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ $(id -u) -eq 0 ]]; then
    sudo=
  elif sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "$0: missing Debian packages: ${missing[*]}; install them with 'sudo apt-get install ${missing[*]}'" >&2
    exit 1
  fi
  echo "$0: installing ${missing[*]}"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" || {
    echo "$0: could not install ${missing[*]} with apt-get" >&2
    exit 1
  }
fi

speechrep data make-synth "$out" --size "$size" --nj "$nj" --seed "$seed" $frame_labels
touch "$out/.done"
