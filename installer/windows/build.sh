#!/usr/bin/env bash
# Build dist/qwen-tray-setup-<version>.exe on Linux: Inno Setup's compiler (ISCC.exe) under Wine.
#
#   bash installer/windows/build.sh           # build; fails on any compiler warning
#   bash installer/windows/build.sh --check   # build, then run the Setup silently under Wine with uv.exe
#                                             # replaced by a probe that records every command line Setup runs,
#                                             # check the daemon's mutex name, and uninstall
#
# Needs root for apt-get on the first run (Debian: wine, wine64, mingw-w64, Xvfb; the 32-bit Wine loader that
# Inno's 32-bit ISCC.exe needs is unpacked from Debian's .debs, because wine32:i386 may not install). Fetches
# Inno Setup 6.4.1 (npm package `innosetup`, which ships ISCC.exe), uv's win_amd64 wheel (uv.exe) and builds
# the qwen-tray wheel. All Wine state lives in $LAB (default /tmp/qwen-tray-wine); the recipe is the one in
# the shared Wine notes (tools/wine/setup.sh). Takes ~3 minutes the first time, seconds after.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LAB=${LAB:-/tmp/qwen-tray-wine}
DISP=${DISP:-}
UV_VERSION=0.13.9       # the uv.exe shipped in the Setup (bump deliberately: it makes the user's Python and venv)
INNO_VERSION=6.4.1
PY=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PY" ] || PY=python3
CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1

step() { printf '== %s  [%s]\n' "$*" "$(date +%T)"; }
die() { echo "build.sh: error: $*" >&2; exit 1; }
mkdir -p "$LAB"

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/pyproject.toml" | head -1)
[ -n "$VERSION" ] || die "no version in pyproject.toml"

# --- 1. packages ------------------------------------------------------------------------------------------------
need=()
for p in wine Xvfb x86_64-w64-mingw32-gcc unzip npm; do command -v "$p" >/dev/null 2>&1 || need+=("$p"); done
[ -x /usr/lib/wine/wine64 ] || need+=(wine64)
[ -f /usr/i686-w64-mingw32/lib/zlib1.dll ] || need+=(libz-mingw-w64)
dpkg -s libc6:i386 >/dev/null 2>&1 || need+=(libc6:i386)
if [ "${#need[@]}" -gt 0 ]; then
  step "installing Wine, mingw-w64 and Xvfb (missing: ${need[*]})"
  [ "$(id -u)" -eq 0 ] || die "run as root once (apt-get), or install: wine wine64 xvfb gcc-mingw-w64-x86-64-win32 unzip libc6:i386"
  export DEBIAN_FRONTEND=noninteractive
  dpkg --print-foreign-architectures | grep -qx i386 || dpkg --add-architecture i386
  apt-get update -q >"$LAB/apt-update.log" 2>&1 || echo "apt-get update reported errors (see $LAB/apt-update.log)"
  apt-get install -y -q --no-install-recommends wine wine64 fonts-wine xvfb gcc-mingw-w64-x86-64-win32 \
    mingw-w64-x86-64-dev libz-mingw-w64 libc6:i386 unzip >"$LAB/apt-install.log" 2>&1 || die "apt-get install (see $LAB/apt-install.log)"
  command -v npm >/dev/null 2>&1 || die "npm is needed to fetch Inno Setup (package innosetup)"
fi

# --- 2. the 32-bit Wine loader, unpacked (ISCC.exe and Setup are 32-bit) --------------------------------------
ROOT32=$LAB/root32
if [ ! -x "$ROOT32/usr/lib/wine/wine" ]; then
  step "32-bit Wine loader in $ROOT32"
  mkdir -p "$LAB/debs32"
  (cd "$LAB/debs32" && apt-get download -q wine32:i386 libwine:i386 libx11-6:i386 libxcb1:i386 libxau6:i386 \
     libxdmcp6:i386 libbsd0:i386 libmd0:i386 libxext6:i386 libxrender1:i386 libfreetype6:i386 libpng16-16:i386 \
     libbrotli1:i386 zlib1g:i386 libfontconfig1:i386 libexpat1:i386 libxi6:i386 libxrandr2:i386 libxfixes3:i386 \
     libxcursor1:i386 libxinerama1:i386 libxcomposite1:i386 libunwind8:i386 liblzma5:i386) >"$LAB/debs32.log" 2>&1 \
     || die "apt-get download (see $LAB/debs32.log)"
  for d in "$LAB"/debs32/*.deb; do dpkg-deb -x "$d" "$ROOT32"; done
  ln -sfn /usr/lib/wine/wine64 "$ROOT32/usr/lib/wine/wine64"
fi
# The 32-bit user32.dll needs zlib1.dll (from libz-mingw-w64); without it ISCC.exe prints nothing and does nothing.
cp /usr/i686-w64-mingw32/lib/zlib1.dll "$ROOT32/usr/lib/i386-linux-gnu/wine/i386-windows/" \
  || die "no /usr/i686-w64-mingw32/lib/zlib1.dll (Debian package libz-mingw-w64)"
W64=/usr/lib/wine/wine64
W32=$ROOT32/usr/lib/wine/wine
# The 32-bit side's environment (its libraries, and the 64-bit loader as WINELOADER's twin) ...
wine32env() { env LD_LIBRARY_PATH="$ROOT32/lib/i386-linux-gnu:$ROOT32/usr/lib/i386-linux-gnu" \
  WINELOADER="$ROOT32/usr/lib/wine/wine64" timeout "${WINE_TIMEOUT:-300}" "$@"; }
# ... and a 32-bit program (ISCC.exe, the Setup, the uninstaller) run by the 32-bit loader in it.
wine32() { wine32env "$W32" "$@"; }

# --- 3. Xvfb and the prefix -------------------------------------------------------------------------------------
export DISPLAY=$DISP WINEPREFIX=$LAB/prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
XVFB=""
cleanup() { [ -n "$XVFB" ] && kill "$XVFB" 2>/dev/null; "$W64" wineserver -k >/dev/null 2>&1 || true; }
trap cleanup EXIT
if [ -z "$DISP" ]; then  # our own Xvfb on a free display (other Xvfbs on this machine are not ours to use)
  for n in $(seq 93 160); do
    [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ] || { DISP=:$n; break; }
  done
  export DISPLAY=$DISP
  Xvfb "$DISP" -screen 0 1280x1024x24 -nolisten tcp >"$LAB/xvfb.log" 2>&1 &
  XVFB=$!
  sleep 1
fi
if [ ! -f "$WINEPREFIX/.qwen-ready-2" ]; then
  step "Wine prefix $WINEPREFIX"
  rm -rf "$WINEPREFIX"
  "$W64" wineboot -i >"$LAB/wineboot.log" 2>&1 || die "wineboot (see $LAB/wineboot.log)"
  # wineboot fills syswow64 only from wine's own i386 DLL dir (empty without wine32:i386): copy the unpacked ones,
  # and register the 32-bit COM classes (Setup's Start-menu shortcut needs them).
  cp -a "$ROOT32/usr/lib/i386-linux-gnu/wine/i386-windows/." "$WINEPREFIX/drive_c/windows/syswow64/"
  mkdir -p "$LAB/wow64dlls"
  ln -sfn "$ROOT32/usr/lib/i386-linux-gnu/wine/i386-windows" "$LAB/wow64dlls/i386-windows"
  ln -sfn /usr/lib/x86_64-linux-gnu/wine/x86_64-unix "$LAB/wow64dlls/x86_64-unix"
  WINEDLLPATH=$LAB/wow64dlls wine32env "$W64" wineboot -u >"$LAB/wineboot-u.log" 2>&1 \
    || die "wineboot -u (see $LAB/wineboot-u.log)"
  touch "$WINEPREFIX/.qwen-ready-2"
fi

# --- 4. Inno Setup, uv.exe, the wheel ----------------------------------------------------------------------------
ISCC=$LAB/inno/package/bin/ISCC.exe
if [ ! -f "$ISCC" ]; then
  step "Inno Setup $INNO_VERSION (npm package innosetup)"
  mkdir -p "$LAB/inno"
  (cd "$LAB/inno" && npm pack -q "innosetup@$INNO_VERSION" >/dev/null 2>&1 && tar xzf "innosetup-$INNO_VERSION.tgz") \
    || die "npm pack innosetup@$INNO_VERSION"
fi
STAGE=$HERE/build
mkdir -p "$STAGE"
if [ ! -f "$LAB/uv-$UV_VERSION.exe" ]; then
  step "uv.exe $UV_VERSION (PyPI's win_amd64 wheel)"
  rm -rf "$LAB/uvwheel" && mkdir -p "$LAB/uvwheel"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --platform win_amd64 -d "$LAB/uvwheel" "uv==$UV_VERSION" \
    2>"$LAB/pip-uv.log" || die "pip download uv (see $LAB/pip-uv.log)"
  unzip -q -o -j "$LAB"/uvwheel/uv-*.whl "uv-$UV_VERSION.data/scripts/uv.exe" -d "$LAB/uvwheel"
  mv "$LAB/uvwheel/uv.exe" "$LAB/uv-$UV_VERSION.exe"
fi
cp "$LAB/uv-$UV_VERSION.exe" "$STAGE/uv.exe"
step "qwen-tray $VERSION wheel"
rm -f "$STAGE"/qwen_tray-*.whl "$STAGE"/qwen_tray_client-*.whl
rm -rf "$LAB/wheelsrc" && mkdir -p "$LAB/wheelsrc"
(cd "$REPO" && tar --exclude=.git --exclude=.venv --exclude=dist --exclude=build --exclude='*.egg-info' \
   --exclude=installer/windows/build -cf - .) | (cd "$LAB/wheelsrc" && tar xf -)
"$PY" -m pip wheel -q --no-deps -w "$STAGE" "$LAB/wheelsrc/ipc" "$LAB/wheelsrc" >"$LAB/wheel.log" 2>&1 \
  || die "pip wheel (see $LAB/wheel.log)"
for w in "qwen_tray-$VERSION-py3-none-any.whl" "qwen_tray_client-$VERSION-py3-none-any.whl"; do
  [ -f "$STAGE/$w" ] || die "no $w in $STAGE"
done

# --- 5. compile ---------------------------------------------------------------------------------------------------
step "ISCC qwen-tray.iss"
OUT=$REPO/dist/qwen-tray-setup-$VERSION.exe
rm -f "$OUT"
mkdir -p "$REPO/dist"
(cd "$HERE" && wine32 "$ISCC" qwen-tray.iss) >"$LAB/iscc.log" 2>&1 || { cat "$LAB/iscc.log"; die "ISCC failed"; }
tr -d '\r' <"$LAB/iscc.log" | grep -iE "warning|error" && die "ISCC reported warnings (above; full log: $LAB/iscc.log)"
# With a 64-bit-only Wine, ISCC prints nothing and exits 0 without compiling: the file is the proof.
[ -f "$OUT" ] || { cat "$LAB/iscc.log"; die "ISCC wrote no $OUT"; }
echo "built $OUT ($(du -h "$OUT" | cut -f1))"
[ "$CHECK" -eq 1 ] || exit 0

# --- 6. --check: run the Setup silently with a probe in uv.exe's place -------------------------------------------
step "probe (mingw-w64) in place of uv.exe"
x86_64-w64-mingw32-gcc -municode -O1 -o "$LAB/cmdlog.exe" "$HERE/probe/cmdlog.c" -ladvapi32 || die "gcc probe"
cp "$STAGE/uv.exe" "$LAB/uv-real.exe"
cp "$LAB/cmdlog.exe" "$STAGE/uv.exe"
(cd "$HERE" && wine32 "$ISCC" /Q "/OZ:$LAB/probe-dist" qwen-tray.iss) >"$LAB/iscc-probe.log" 2>&1
cp "$LAB/uv-real.exe" "$STAGE/uv.exe"
PSETUP=$LAB/probe-dist/qwen-tray-setup-$VERSION.exe
[ -f "$PSETUP" ] || die "the probe Setup was not built (see $LAB/iscc-probe.log)"
APPDIR=$WINEPREFIX/drive_c/users/$(whoami)/AppData/Local/Programs/qwen-tray
rm -rf "$WINEPREFIX/drive_c/qwen-probe" "$APPDIR"

step "Setup /VERYSILENT /TASKS=autostart (no model pull)"
wine32 "$PSETUP" /VERYSILENT /SUPPRESSMSGBOXES /CURRENTUSER /TASKS=autostart '/LOG=C:\qwen-probe-setup.log' \
  >/dev/null 2>&1 || die "Setup exited with $?"
echo "--- command lines Setup ran (C:\\qwen-probe\\calls.txt):"
tr -d '\r' <"$WINEPREFIX/drive_c/qwen-probe/calls.txt" | sed 's/^/    /'
tr -d '\r' <"$WINEPREFIX/drive_c/qwen-probe-setup.log" | grep -E "daemon mutex|run: |failed" | sed 's/^.*\(daemon mutex\|run: \|failed\)/    \1/'
SID=$("$W64" "$LAB/cmdlog.exe" sid 2>/dev/null | tr -d '\r')
grep -q "daemon mutex: Global\\\\qwen-tray-$SID\$" <(tr -d '\r' <"$WINEPREFIX/drive_c/qwen-probe-setup.log") \
  || die "Setup's mutex name is not Global\\qwen-tray-$SID"
echo "    the token's SID ($SID) is in Setup's mutex name, as in daemon/instance.py"
echo '{}' >"$WINEPREFIX/drive_c/qwen-probe/conn.json"
ACL=$("$W64" "$LAB/cmdlog.exe" acl 'C:\qwen-probe\conn.json' "D:P(A;;FA;;;$SID)" 2>/dev/null | tr -d '\r')
echo "    connection-file ACL, Win32Acl's calls in C: set D:P(A;;FA;;;$SID), read back $ACL"
case "$ACL" in *"(A;;FA;;;$SID)"*) ;; *) echo "    (Wine did not keep that DACL: its security emulation proves little here)" ;; esac
for f in bin/uv.exe "wheels/qwen_tray-$VERSION-py3-none-any.whl" demo-model/openvino_language_model.xml; do
  [ -f "$APPDIR/$f" ] || die "Setup did not install $f"
done

# A stand-in daemon: holds the daemon's mutex until `qwen-tray.exe stop` (the probe) sets EVENT, or SECONDS pass.
hold() {  # hold SECONDS EVENT LOGNAME
  "$W64" "$LAB/cmdlog.exe" mutex "Global\\qwen-tray-$SID" "$1" "$2" >"$LAB/$3" 2>&1 &
  HOLDER=$!
  for _ in $(seq 60); do grep -q held "$LAB/$3" 2>/dev/null && return 0; sleep 0.5; done
  die "the stand-in daemon did not take the mutex"
}
setup_log() { tr -d '\r' <"$WINEPREFIX/drive_c/$1"; }

step "upgrade in place over a running daemon: Setup stops it first"
hold 60 qwen-probe-stop holder-upgrade.out
wine32 "$PSETUP" /VERYSILENT /SUPPRESSMSGBOXES /CURRENTUSER '/LOG=C:\qwen-probe-setup2.log' >/dev/null 2>&1 \
  || die "the upgrade Setup failed"
wait "$HOLDER" || true
grep -q "released (stopped)" "$LAB/holder-upgrade.out" || die "Setup did not stop the running daemon"
setup_log qwen-probe-setup2.log | grep -E "run: .* stop|daemon mutex" | sed 's/^.*\(run: \|daemon mutex\)/    \1/'
setup_log qwen-probe-setup2.log | grep -q "Installation process succeeded" || die "the upgrade did not install"
echo "    the daemon was stopped, then the upgrade installed"

step "Setup while a daemon that does not stop holds the mutex (AppMutex refuses)"
hold 90 never-set holder-stuck.out
WINE_TIMEOUT=60 wine32 "$PSETUP" /VERYSILENT /SUPPRESSMSGBOXES /CURRENTUSER '/LOG=C:\qwen-probe-setup3.log' \
  >/dev/null 2>&1 || true
kill "$HOLDER" 2>/dev/null || true
setup_log qwen-probe-setup3.log | grep -q "is currently running" || die "Setup did not see the running daemon's mutex"
setup_log qwen-probe-setup3.log | grep -q "Installation process succeeded" && die "Setup installed over a running daemon"
echo "    Setup refused: qwen-tray is currently running"

step "uninstall, silently, while the daemon runs: it is stopped before anything is deleted"
: >"$WINEPREFIX/drive_c/qwen-probe/calls.txt"
hold 60 qwen-probe-stop holder-unins.out
wine32 "$APPDIR/unins000.exe" /VERYSILENT /SUPPRESSMSGBOXES '/LOG=C:\qwen-probe-unins.log' >/dev/null 2>&1 || true
for _ in $(seq 60); do [ -d "$APPDIR" ] || break; sleep 1; done
wait "$HOLDER" || true
grep -q "released (stopped)" "$LAB/holder-unins.out" || die "the uninstaller did not stop the daemon"
echo "--- command lines the uninstaller ran:"
tr -d '\r' <"$WINEPREFIX/drive_c/qwen-probe/calls.txt" | grep '^cmd' | sed 's/^/    /'
setup_log qwen-probe-unins.log | grep -nE "run: .* stop|daemon mutex|Deleting file" | sed -n '1,3s/^/    /p'
first_delete=$(setup_log qwen-probe-unins.log | grep -n -m1 "Deleting file" | cut -d: -f1)
gone=$(setup_log qwen-probe-unins.log | grep -n -m1 "daemon mutex .*: gone" | cut -d: -f1)
if [ -z "$gone" ] || [ -z "$first_delete" ] || [ "$gone" -ge "$first_delete" ]; then
  die "the uninstaller deleted files before the daemon was gone"
fi
[ -d "$APPDIR" ] && die "the app folder is still there: $(ls "$APPDIR")"
echo "    the daemon was gone before the first file was deleted; the app folder is gone"
echo "check passed"
