#!/usr/bin/env bash
# Remove qwen-tray for the current user: stop it, remove start-at-login, the
# program (venv, app, demo model), `qwen-tray` in ~/.local/bin, the launcher,
# the icon, the compile cache, the logs and the runtime files.
#
#   bash ~/.local/share/qwen-tray/uninstall.sh [--purge | --keep-data] [--prefix DIR]
#
#   (no option)   asks before deleting your models and settings; with no terminal it keeps them and says where
#   --purge       also deletes models and settings, without asking
#   --keep-data   keeps models and settings, without asking
#   --prefix DIR  the folder given to install.sh --prefix (default: ${XDG_DATA_HOME:-~/.local/share}/qwen-tray)
set -euo pipefail

say() { printf '==> %s\n' "$*"; }
warn() { printf 'qwen-tray uninstall: warning: %s\n' "$*" >&2; }

DATA_CHOICE="ask" PREFIX=""
while [ $# -gt 0 ]; do
  case "$1" in
    --purge) DATA_CHOICE="delete" ;;
    --keep-data) DATA_CHOICE="keep" ;;
    --prefix) PREFIX="${2:?--prefix needs a folder}"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) printf 'qwen-tray uninstall: error: unknown option %s\n' "$1" >&2; exit 2 ;;
  esac
  shift
done
[ "$DATA_CHOICE" = ask ] && [ ! -t 0 ] && DATA_CHOICE="keep-quietly"

abs_or() { case "${1:-}" in /*) printf '%s' "$1" ;; *) printf '%s' "$2" ;; esac; }
DATA_HOME="$(abs_or "${XDG_DATA_HOME:-}" "$HOME/.local/share")"
PREFIX="${PREFIX:-$DATA_HOME/qwen-tray}"
VENV="$PREFIX/venv"
QT="$VENV/bin/qwen-tray"
MANIFEST="$PREFIX/install-manifest.txt"

# ---- where the program keeps its files: ask the installed copy (it knows overrides), else the XDG defaults
paths=()
if [ -x "$VENV/bin/python" ]; then
  mapfile -t paths < <("$VENV/bin/python" -I -c '
from qwen_tray.paths import default_paths
p = default_paths()
for v in (p.config_file, p.models_dir, p.cache_dir, p.log_dir, p.runtime_dir):
    print(v)' 2>/dev/null) || paths=()
fi
if [ "${#paths[@]}" -ne 5 ]; then
  state="$(abs_or "${XDG_STATE_HOME:-}" "$HOME/.local/state")/qwen-tray"
  runtime="$state/run"
  [ -n "${XDG_RUNTIME_DIR:-}" ] && runtime="$XDG_RUNTIME_DIR/qwen-tray"
  paths=(
    "${QWEN_TRAY_CONFIG:-$(abs_or "${XDG_CONFIG_HOME:-}" "$HOME/.config")/qwen-tray/config.toml}"
    "$DATA_HOME/qwen-tray/models"
    "$(abs_or "${XDG_CACHE_HOME:-}" "$HOME/.cache")/qwen-tray/compiled"
    "$state/log"
    "$runtime"
  )
fi
CONFIG_FILE="${paths[0]}" MODELS="${paths[1]}" CACHE="${paths[2]}" LOGS="${paths[3]}" RUNTIME="${paths[4]}"

# Delete a folder only when it is qwen-tray's own: named qwen-tray, or directly inside one.
is_ours() { [ "$(basename "$1")" = qwen-tray ] || [ "$(basename "$(dirname "$1")")" = qwen-tray ]; }
remove_dir() { if [ -e "$1" ] && is_ours "$1"; then rm -rf -- "$1"; fi; }
rmdir_empty() { [ -d "$1" ] && rmdir -- "$1" 2>/dev/null || true; }
owner_dir() { if [ "$(basename "$(dirname "$1")")" = qwen-tray ]; then dirname "$1"; else printf '%s' "$1"; fi; }

# ---- stop it and remove start-at-login
if [ -x "$QT" ]; then
  say "stopping qwen-tray if it runs"
  timeout 30 "$QT" stop >/dev/null 2>&1 || true
  say "removing start at login"
  "$QT" autostart off >/dev/null || warn "qwen-tray autostart off failed; removing its files directly"
fi
config_home="$(abs_or "${XDG_CONFIG_HOME:-}" "$HOME/.config")"
if [ -L "$config_home/systemd/user/default.target.wants/qwen-tray.service" ] && command -v systemctl >/dev/null 2>&1; then
  systemctl --user disable qwen-tray.service >/dev/null 2>&1 || true
fi
rm -f -- "$config_home/autostart/qwen-tray.desktop" "$config_home/systemd/user/qwen-tray.service" \
  "$config_home/systemd/user/default.target.wants/qwen-tray.service"
for d in autostart systemd/user/default.target.wants systemd/user systemd; do rmdir_empty "$config_home/$d"; done

# ---- the program
say "removing the program from $PREFIX"
rm -rf -- "$VENV" "$PREFIX/app" "$PREFIX/demo-model" "$PREFIX/uninstall.sh"
manifest=()
[ -f "$MANIFEST" ] && mapfile -t manifest <"$MANIFEST"
rm -f -- "$MANIFEST"
for entry in "${manifest[@]}"; do
  case "$entry" in
    "file "*) f="${entry#file }"
      # ~/.local/bin/qwen-tray only if it is still our link
      if [ -L "$f" ] || [ "$(basename "$f")" != qwen-tray ]; then rm -f -- "$f"; fi ;;
  esac
done

# ---- caches, logs and runtime files: made by the program, worth nothing without it
remove_dir "$(owner_dir "$CACHE")"
remove_dir "$LOGS"
remove_dir "$RUNTIME"
state_dir="$(dirname "$LOGS")"
[ "$(basename "$state_dir")" = qwen-tray ] && rmdir_empty "$state_dir"

# ---- models and settings: yours; ask, or keep and say where
config_dir="$(dirname "$CONFIG_FILE")"
data_dir="$(dirname "$MODELS")"
kept=()
[ -e "$MODELS" ] && kept+=("models:   $MODELS ($(du -sh "$MODELS" 2>/dev/null | cut -f1))")
if [ "$(basename "$config_dir")" = qwen-tray ]; then
  [ -e "$config_dir" ] && kept+=("settings: $config_dir")
else
  [ -e "$CONFIG_FILE" ] && kept+=("settings: $CONFIG_FILE")
fi
if [ "${#kept[@]}" -gt 0 ] && [ "$DATA_CHOICE" = ask ]; then
  echo "Your models and settings:"
  printf '    %s\n' "${kept[@]}"
  read -r -p "Delete them too? [y/N] " answer || answer=""
  case "$answer" in [yY]*) DATA_CHOICE="delete" ;; *) DATA_CHOICE="keep" ;; esac
fi
if [ "$DATA_CHOICE" = delete ]; then
  say "deleting models and settings"
  remove_dir "$MODELS"
  if [ "$(basename "$config_dir")" = qwen-tray ]; then remove_dir "$config_dir"; else rm -f -- "$CONFIG_FILE"; fi
  [ "$(basename "$data_dir")" = qwen-tray ] && remove_dir "$data_dir"
  kept=()
fi

# ---- folders the installer created, deepest first, if nothing else lives there now
while IFS= read -r d; do
  rmdir_empty "$d"
done < <(printf '%s\n' "${manifest[@]}" | sed -n 's/^dir //p' | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-)
rmdir_empty "$PREFIX"
if [ -d "$PREFIX" ]; then  # data kept: remember our folders for a later --purge
  printf '%s\n' "${manifest[@]}" | grep '^dir ' >"$MANIFEST" || rm -f -- "$MANIFEST"
fi

say "qwen-tray is uninstalled"
if [ "${#kept[@]}" -gt 0 ]; then
  echo "Kept your models and settings (run this again with --purge to delete them):"
  printf '    %s\n' "${kept[@]}"
fi
