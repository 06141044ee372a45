#!/usr/bin/env bash
# Set up qwen-tray from this source tree, then either start it or run the whole test suite.
#
#   bash installer/dev-setup.sh run    # set up, then start the daemon (tray + hotkeys with a display)
#   bash installer/dev-setup.sh test   # set up, then run every test (what CI runs)
#
# Setup: Debian packages the desktop tests need (Linux, when apt-get is there),
# a venv at .venv/ in the repo root, and the package with all extras (export, dev).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
case "$mode" in
  run | test) shift ;;
  *) echo "usage: bash installer/dev-setup.sh run|test [args...]" >&2; exit 2 ;;
esac

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# A Python 3.10+ with venv and tkinter.
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3 python3.12 python3.13 python3.10; do
    if command -v "$cand" >/dev/null 2>&1 &&
      "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      PY="$(command -v "$cand")"
      break
    fi
  done
fi
[ -n "$PY" ] || { echo "qwen-tray needs Python 3.10 or newer (python3 not found)" >&2; exit 1; }

if [ "$(uname -s)" = Linux ] && command -v apt-get >/dev/null 2>&1; then
  # Xvfb + xdotool drive the desktop tests; trayer hosts the tray icon; xclip reads the
  # clipboard; x11-utils has xwininfo/xprop; desktop-file-utils validates .desktop files;
  # the shellcheck package lints the installer scripts; systemd-analyze (systemd) verifies the user unit;
  # mingw-w64's compiler and Windows SDK headers check the Win32 ctypes table (tests/test_win32_table.py);
  # curl is one of the real clients the HTTP API is tested with; strace lets the privacy test see every
  # connection the daemon makes, native code included. gsettings (libglib2.0-bin) with GNOME's schemas is how
  # darkdetect reads the light/dark setting the popup follows; a test switches it.
  pkgs=(xvfb xauth xdotool trayer x11-utils x11-xserver-utils xclip desktop-file-utils shellcheck systemd
    gcc-mingw-w64-x86-64-win32 mingw-w64-x86-64-dev curl strace libglib2.0-bin gsettings-desktop-schemas)
  "$PY" -c 'import tkinter' 2>/dev/null || pkgs+=(python3-tk)
  "$PY" -c 'import ensurepip' 2>/dev/null || pkgs+=(python3-venv)
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    say "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PY"
  "$PY" -m venv .venv
fi
stamp=.venv/.qwen-tray-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ ipc/pyproject.toml -nt "$stamp" ]; then
  say "installing qwen-tray with the export and dev extras into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  # Two distributions: the client (ipc/, qwen_tray_client) and the daemon (qwen_tray), which depends on it.
  .venv/bin/python -m pip install --quiet -e ./ipc -e ".[export,dev]"
  touch "$stamp"
fi

# The commands to use from here on: ./qwen-tray (the launcher in the repo root) runs .venv's qwen-tray.
next_steps() {
  say "qwen-tray is set up in $PWD; from this folder:"
  echo "    ./qwen-tray status                       # is it running, which model, on which device"
  echo "    ./qwen-tray ask --image shot.png \"What does this error mean?\""
  echo "    ./qwen-tray stop"
  echo "    ./qwen-tray --help                       # every command"
  echo "  To type plain \`qwen-tray\` anywhere:  export PATH=\"$PWD/.venv/bin:\$PATH\""
  echo "  or install it for this user:  bash installer/linux/install.sh"
}

if [ "$mode" = run ]; then
  next_steps
  say "starting qwen-tray (Ctrl+C, or \`./qwen-tray stop\` in another terminal, to quit)"
  exec .venv/bin/qwen-tray run "$@"
fi
say "running the test suite"
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
[ "$rc" -eq 5 ] && { echo "no tests were collected" >&2; exit 1; }
next_steps
echo "  Start it:  ./qwen-tray run"
exit "$rc"
