#!/usr/bin/env bash
# Install speechrep and everything it needs into ./.venv (idempotent).
#
#   bash tools/setup.sh          # library, CLI, recipes, speech synthesizers, and (wanted, not
#                                #   required) a real voice for the demo: Asterisk's English G.722
#                                #   prompts, their transcripts and the PyPI G.722 decoder
#   bash tools/setup.sh --dev    # + what the tests need (pytest, parity references, chromium, sox)
#   bash tools/setup.sh --voices # + the many-voice corpus (make-synth --size many|large): every
#                                #   festival voice, fortunes in it/cs/ru, Asterisk G.722 prompts
#                                #   and their transcripts, the PyPI G.722 decoder
#
# System packages come from apt when missing (as root, or through sudo); a clear error
# names them when neither works. Python packages go into .venv; torch is pinned to the
# CPU build 2.13.0. A stamp keyed on pyproject.toml and this script makes reruns instant.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
voices=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --voices) voices=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

# --- system packages --------------------------------------------------------------
apt_pkgs=(flite festival festvox-kdlpc16k festvox-kallpc16k festvox-us-slt-hts fortunes-min fortunes libsndfile1 python3.11-doc)
if [ "$dev" = 1 ]; then
  apt_pkgs+=(chromium sox)  # sox: the tests read Kaldi pipe commands ("sox ... |")
fi
# the many-voice corpus (speechrep/data/synth/many.py); voices of languages without text
# in Debian (Finnish, Catalan, Hindi, Telugu, Marathi) are skipped there, so not installed
voice_pkgs=(festvox-italp16k festvox-itapc16k festvox-czech-dita festvox-czech-krb festvox-czech-machac
  festvox-czech-ph festvox-ru fortunes-it fortunes-cs fortunes-ru
  asterisk-core-sounds-en-g722 asterisk-core-sounds-es-g722 asterisk-core-sounds-fr-g722 asterisk-core-sounds-ru-g722)
# the demo's real voice (egs/synth/all: conversions real <-> synthetic): installed when apt
# can, else the demo leaves it out and says so
wanted_pkgs=(asterisk-core-sounds-en-g722)
if [ "$voices" = 1 ]; then
  apt_pkgs+=("${voice_pkgs[@]}")
  wanted_pkgs=()
fi
PY=${PYTHON:-python3}
if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  apt_pkgs+=(python3-venv)
fi
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else SUDO=none; fi
apt_updated=0
apt_install() {  # apt_install PKG...: true when installed
  [ "$SUDO" != none ] || return 1
  if [ "$apt_updated" = 0 ]; then $SUDO apt-get update -qq || return 1; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  if ! apt_install "${missing[@]}"; then
    echo "setup: error: could not install system packages: ${missing[*]} (run as root or with sudo, or install them yourself)" >&2
    exit 1
  fi
fi
real_voice=1
for p in "${wanted_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
  echo "setup: installing $p (the demo's real voice)"
  if ! apt_install "$p"; then
    echo "setup: warning: could not install $p: the demo leaves out its real voice" >&2
    real_voice=0
  fi
done

# The prompts' transcripts are docs of asterisk-core-sounds-<lang>; images that exclude
# /usr/share/doc (Docker's Debian) drop them, so they are read from the .deb instead.
langs=(); [ "$real_voice" = 1 ] && langs=(en); [ "$voices" = 1 ] && langs=(en es fr ru)
for lang in "${langs[@]}"; do
  name=asterisk-core-sounds-$lang/core-sounds-$lang.txt.gz
  [ -f "/usr/share/doc/$name" ] || [ -f "/usr/local/share/doc/$name" ] && continue
  echo "setup: extracting $name from the asterisk-core-sounds-$lang package"
  tmp=$(mktemp -d)
  if [ "$SUDO" = none ] || ! { (cd "$tmp" && apt-get download -qq "asterisk-core-sounds-$lang") \
      && dpkg-deb -x "$tmp"/*.deb "$tmp/x" && $SUDO install -D -m 644 "$tmp/x/usr/share/doc/$name" "/usr/local/share/doc/$name"; }; then
    rm -rf "$tmp"
    if [ "$voices" = 1 ]; then echo "setup: error: could not extract $name (run as root or with sudo)" >&2; exit 1; fi
    echo "setup: warning: could not extract $name: the demo leaves out its real voice" >&2
    continue
  fi
  rm -rf "$tmp"
done

# --- python environment -----------------------------------------------------------
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "setup: error: $PY is $("$PY" --version 2>&1); speechrep needs Python >= 3.10 (set PYTHON=...)" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# the G.722 decoder of the Asterisk prompts (chosen over ffmpeg: same samples, 30x faster)
if [ "$real_voice" = 1 ] && ! .venv/bin/python -c 'import G722' >/dev/null 2>&1; then
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check g722==1.2.8; then
    if [ "$voices" = 1 ]; then echo "setup: error: could not install the G.722 decoder (pip install g722)" >&2; exit 1; fi
    echo "setup: warning: could not install the G.722 decoder (pip install g722): the demo leaves out its real voice" >&2
  fi
fi
key=$(cat pyproject.toml tools/setup.sh | sha1sum | cut -c1-12)
stamp_dev=.venv/.speechrep-dev-$key
stamp_base=.venv/.speechrep-base-$key
if [ -e "$stamp_dev" ] || { [ "$dev" = 0 ] && [ -e "$stamp_base" ]; }; then
  echo "setup: .venv is up to date"
  exit 0
fi
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check --no-warn-script-location)
"${pip[@]}" --upgrade pip
# CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
"${pip[@]}" torch==2.13.0
if [ "$dev" = 1 ]; then
  "${pip[@]}" -e ".[dev]"
else
  "${pip[@]}" -e .
fi
# Compile and cache the numba kernels now so the first real call is fast.
.venv/bin/python -c 'import speechrep.features as f; f.warmup()'
rm -f .venv/.speechrep-base-* .venv/.speechrep-dev-*
if [ "$dev" = 1 ]; then touch "$stamp_dev"; else touch "$stamp_base"; fi
echo "setup: done (.venv)"
