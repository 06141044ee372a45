#!/usr/bin/env bash
# Install qwen-tray for the current user (no root): a venv and the app under
# ~/.local/share/qwen-tray, `qwen-tray` on PATH in ~/.local/bin, a launcher in
# the applications menu, and, if asked, start at login.
#
#   bash installer/linux/install.sh [options]
#
#   --autostart          start the tray at login (asked when run in a terminal; off otherwise)
#   --no-autostart       do not start at login, and do not ask
#   --headless           with --autostart: start the service without tray at login (systemd user unit)
#   --pull-model         download Qwen3-VL-4B (OpenVINO's fp16 IR, ~9 GB) and compress it to int4 for the NPU (no torch)
#   --start / --no-start start the tray when done (default: start when run in a terminal with a display)
#   --python PY          the Python 3.10+ to build the venv with (default: the first python3.x found)
#   --prefix DIR         where the venv and app go (default: ${XDG_DATA_HOME:-~/.local/share}/qwen-tray)
#   --system-site-packages  let the venv see the Python's own packages (e.g. Debian's python3-gi)
#   --wheels DIR         install offline from a folder of wheels (pip --no-index --find-links DIR)
#   --deps-from PY       reuse the dependencies (openvino, ...) already installed for another Python,
#                        e.g. a developer's .venv: the new venv reads that environment's site-packages
#                        through a .pth file and only qwen-tray itself is installed. Fast and offline;
#                        that environment must stay where it is.
#   --system-deps        install missing Debian packages (python3-venv, python3-tk, xclip) with apt-get (sudo if
#                        not root); without it the installer only names them
#
# With no terminal (stdin not a tty) it never asks: it uses the options given and the defaults.
set -euo pipefail

say() { printf '==> %s\n' "$*"; }
warn() { printf 'qwen-tray install: warning: %s\n' "$*" >&2; }
die() { printf 'qwen-tray install: error: %s\n' "$*" >&2; exit 1; }

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
INTERACTIVE=0
[ -t 0 ] && INTERACTIVE=1

AUTOSTART="" HEADLESS=0 PULL=0 START="" PY="" PREFIX="" SYSSITE=0 WHEELS="" DEPS_FROM="" SYSDEPS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --autostart) AUTOSTART=1 ;;
    --no-autostart) AUTOSTART=0 ;;
    --headless) HEADLESS=1 ;;
    --pull-model) PULL=1 ;;
    --start) START=1 ;;
    --no-start) START=0 ;;
    --python) PY="${2:?--python needs a path}"; shift ;;
    --prefix) PREFIX="${2:?--prefix needs a folder}"; shift ;;
    --system-site-packages) SYSSITE=1 ;;
    --wheels) WHEELS="${2:?--wheels needs a folder}"; shift ;;
    --deps-from) DEPS_FROM="${2:?--deps-from needs a python}"; shift ;;
    --system-deps) SYSDEPS=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

[ -f "$SRC/pyproject.toml" ] && [ -d "$SRC/daemon" ] || die "run this script from a qwen-tray source tree ($SRC has no pyproject.toml)"
[ -n "$HOME" ] || die "HOME is not set"
DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
case "$DATA_HOME" in /*) ;; *) DATA_HOME="$HOME/.local/share" ;; esac
PREFIX="${PREFIX:-$DATA_HOME/qwen-tray}"
VENV="$PREFIX/venv"
BIN_DIR="$HOME/.local/bin"
APPS_DIR="$DATA_HOME/applications"
ICON_DIR="$DATA_HOME/icons/hicolor/scalable/apps"
MANIFEST="$PREFIX/install-manifest.txt"

# ---- Python 3.10+ with venv
if [ -n "$DEPS_FROM" ]; then
  # find_spec, not import: importing openvino here would run its telemetry (qwen-tray turns it off on its own import)
  "$DEPS_FROM" -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ("openvino", "openvino_genai", "zmq", "PIL", "numpy", "platformdirs")))' \
    2>/dev/null ||
    die "--deps-from $DEPS_FROM: that Python cannot import openvino, openvino_genai, pyzmq, pillow, numpy and platformdirs"
  PY="${PY:-$DEPS_FROM}"  # same interpreter version, or its compiled packages would not load
fi
if [ -z "$PY" ]; then
  for cand in python3 python3.13 python3.12 python3.11 python3.10; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      PY="$(command -v "$cand")"
      break
    fi
  done
fi
[ -n "$PY" ] || die "qwen-tray needs Python 3.10 or newer: sudo apt-get install python3 python3-venv python3-tk"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "$PY is older than Python 3.10"

missing=()
"$PY" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
"$PY" -c 'import tkinter' 2>/dev/null || missing+=(python3-tk)
command -v xclip >/dev/null 2>&1 || missing+=(xclip)  # optional: asking about an image on the clipboard
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$SYSDEPS" = 1 ] && command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    say "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  elif [[ " ${missing[*]} " == *" python3-venv "* ]]; then
    die "$PY has no venv module: sudo apt-get install ${missing[*]} (or run again with --system-deps)"
  else
    [[ " ${missing[*]} " == *" python3-tk "* ]] &&
      warn "$PY has no tkinter: the popup needs it (sudo apt-get install python3-tk, or --system-deps); --headless works without"
    [[ " ${missing[*]} " == *" xclip "* ]] &&
      warn "xclip is missing: asking about a clipboard image needs it (sudo apt-get install xclip, or --system-deps)"
  fi
fi

# ---- remember what we create, so uninstall.sh removes exactly that
created=()
make_dir() {  # mkdir -p, noting each folder that did not exist
  local d="$1" todo=()
  while [ ! -d "$d" ]; do todo=("$d" "${todo[@]}"); d="$(dirname "$d")"; done
  for d in "${todo[@]}"; do mkdir "$d"; created+=("dir $d"); done
}
make_dir "$PREFIX"
[ -f "$MANIFEST" ] && mapfile -t old_manifest <"$MANIFEST" || old_manifest=()

# ---- the app: a copy of the source (so the checkout can go away) and the demo model
say "copying qwen-tray into $PREFIX"
rm -rf "$PREFIX/app" "$PREFIX/demo-model"
mkdir "$PREFIX/app"
for item in daemon ipc pyproject.toml README.md LICENSE; do
  [ -e "$SRC/$item" ] && cp -R "$SRC/$item" "$PREFIX/app/"
done
find "$PREFIX/app" -name __pycache__ -type d -prune -exec rm -rf {} +
demo="$SRC/tests/fixtures/demo-qwen3-vl-ov"
[ -d "$demo" ] && cp -R "$demo" "$PREFIX/demo-model"  # found by qwen_tray.paths.bundled_model_dir()
cp "$SRC/installer/linux/uninstall.sh" "$PREFIX/uninstall.sh"
chmod +x "$PREFIX/uninstall.sh"

# ---- the venv and the package
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  rm -rf "$VENV"  # left by a Python that is gone
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "creating a Python environment in $VENV"
  venv_args=()
  [ "$SYSSITE" = 1 ] && venv_args+=(--system-site-packages)
  "$PY" -m venv "${venv_args[@]}" "$VENV"
fi
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
[ "$INTERACTIVE" = 1 ] || pip+=(--quiet)
extra=""  # `model pull` needs no extra: it compresses a published OpenVINO IR with NNCF (a runtime dependency)
if [ -n "$DEPS_FROM" ]; then
  site="$("$DEPS_FROM" -c 'import sysconfig; p = sysconfig.get_paths(); print(p["purelib"]); print(p["platlib"])' | sort -u)"
  venv_site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  printf '%s\n' "$site" >"$venv_site/qwen-tray-deps.pth"
  say "building qwen-tray with $DEPS_FROM and installing it (dependencies from: $(echo "$site" | tr '\n' ' '))"
  wheel_dir="$(mktemp -d)"
  trap 'rm -rf "$wheel_dir"' EXIT
  "$DEPS_FROM" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation --no-cache-dir \
    -w "$wheel_dir" "$PREFIX/app" >/dev/null 2>&1 || die "building the qwen-tray wheel failed (try without --deps-from)"
  "${pip[@]}" install --no-deps --no-index --force-reinstall "$wheel_dir"/qwen_tray-*.whl
elif [ -n "$WHEELS" ]; then
  say "installing qwen-tray and its dependencies from $WHEELS (offline)"
  "${pip[@]}" install --no-index --find-links "$WHEELS" "$PREFIX/app$extra"
else
  say "installing qwen-tray and its dependencies (OpenVINO and friends: a few hundred MB, a few minutes)"
  "${pip[@]}" install --upgrade "$PREFIX/app$extra" ||
    die "pip could not install the dependencies: are you offline? Use --wheels DIR with a folder of wheels"
fi
rm -rf "$PREFIX/app/build" "$PREFIX/app"/*.egg-info
QT="$VENV/bin/qwen-tray"
version="$("$QT" --version)" || die "the installed qwen-tray does not start: $QT --version failed"

# ---- qwen-tray on PATH
make_dir "$BIN_DIR"
if [ -e "$BIN_DIR/qwen-tray" ] && [ ! -L "$BIN_DIR/qwen-tray" ]; then
  warn "$BIN_DIR/qwen-tray exists and is not ours: left alone (run $QT directly)"
else
  ln -sfn "$QT" "$BIN_DIR/qwen-tray"
  created+=("file $BIN_DIR/qwen-tray")
fi
QCMD="qwen-tray"  # how the user types it, printed with the next steps at the end
case ":$PATH:" in
  *":$BIN_DIR:"*) ;;
  *) QCMD="$BIN_DIR/qwen-tray"
     warn "$BIN_DIR is not on your PATH: add  export PATH=\"\$HOME/.local/bin:\$PATH\"  to ~/.profile" ;;
esac

# ---- launcher and icon
make_dir "$APPS_DIR"
make_dir "$ICON_DIR"
"$VENV/bin/python" -I - "$SRC/installer/linux/qwen-tray.desktop" "$APPS_DIR/qwen-tray.desktop" "$QT" <<'PY'
import sys
from pathlib import Path

from qwen_tray.autostart.linux import exec_value

template, dest, program = sys.argv[1:4]
Path(dest).write_text(Path(template).read_text().replace("@EXEC@", exec_value([program, "run"])))
PY
created+=("file $APPS_DIR/qwen-tray.desktop")
cp "$SRC/installer/linux/qwen-tray.svg" "$ICON_DIR/qwen-tray.svg"
created+=("file $ICON_DIR/qwen-tray.svg")
if command -v desktop-file-validate >/dev/null 2>&1; then
  desktop-file-validate "$APPS_DIR/qwen-tray.desktop" || warn "the launcher did not validate"
fi

# Keep the folders noted by an earlier install too (a re-install must not forget them).
{
  printf '%s\n' "${old_manifest[@]}" "${created[@]}" | grep -v '^$' | sort -u
} >"$MANIFEST.tmp"
mv "$MANIFEST.tmp" "$MANIFEST"

# ---- start at login
if [ -z "$AUTOSTART" ]; then
  AUTOSTART=0
  if [ "$INTERACTIVE" = 1 ]; then
    read -r -p "Start qwen-tray when you log in? [y/N] " answer || answer=""
    case "$answer" in [yY]*) AUTOSTART=1 ;; esac
  fi
fi
if [ "$AUTOSTART" = 1 ]; then
  # --force: the installer was asked for this mode, so it replaces one of the other kind
  if [ "$HEADLESS" = 1 ]; then "$QT" autostart on --headless --force; else "$QT" autostart on --force; fi
fi

# ---- the model
if [ "$PULL" = 1 ]; then
  say "downloading the model and compressing it to int4 (several GB; progress below)"
  "$QT" model pull || warn "the model could not be pulled (offline?): qwen-tray answers with its tiny demo model until you run  qwen-tray model pull"
fi

say "installed $version"
echo "    program:   $PREFIX (venv, app, demo model)"
echo "    command:   $BIN_DIR/qwen-tray"
echo "    launcher:  $APPS_DIR/qwen-tray.desktop"
echo "    at login:  $("$QT" autostart status | head -1)"
echo "    uninstall: $PREFIX/uninstall.sh   (--purge also deletes models and settings)"
[ "$PULL" = 1 ] || echo "    model:     run  $QCMD model pull  for Qwen3-VL (until then a tiny demo model answers: it names the main colour of the image)"
say "next"
echo "    $QCMD run            # start it (tray + hotkeys; Ctrl+Alt+Q asks about the screen)"
echo "    $QCMD status         # is it running, which model, on which device"
echo "    $QCMD ask --image shot.png \"What does this error mean?\""
echo "    $QCMD --help         # every command"

# ---- start now
if [ -z "$START" ]; then
  START=0
  [ "$INTERACTIVE" = 1 ] && [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && START=1
fi
if [ "$START" = 1 ]; then
  say "starting qwen-tray (it logs to $("$QT" logs --path 2>/dev/null))"
  if [ "$HEADLESS" = 1 ]; then set -- run --headless; else set -- run; fi
  nohup setsid "$QT" "$@" >/dev/null 2>&1 </dev/null &
fi
