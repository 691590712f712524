#!/usr/bin/env bash
# `cargo xtask bench footprint`, inside its own headless desktop (xvfb-run + dbus-run-session):
# PSS (/proc/PID/smaps_rollup) of the app and its WebKit children with the window open and idle,
# then closed to the tray once the web view is released, and idle CPU over IDLE_S in both;
# then a bare Tauri window of the same Tauri version (src-tauri/examples/bare-window.rs).
# Env in: APP, BARE (binaries), WORK (scratch dir), LLMOCK (the upstream: OpenAI healthy),
# MODEL (an offline model configured, not loaded), SETTLE_S, IDLE_S.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${APP:?}" "${BARE:?}" "${WORK:?}" "${LLMOCK:?}" "${MODEL:?}"
settle=${SETTLE_S:-20} idle=${IDLE_S:-30}
export XDG_RUNTIME_DIR="$WORK/runtime" XDG_CONFIG_HOME="$WORK/config" XDG_DATA_HOME="$WORK/data" HOME="$WORK/home"
mkdir -p "$XDG_RUNTIME_DIR" "$XDG_CONFIG_HOME/understudy" "$XDG_DATA_HOME" "$HOME"
chmod 700 "$XDG_RUNTIME_DIR"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$LLMOCK" serve --host 127.0.0.1 --port "$port" --log-level warning >"$WORK/llmock.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
printf '[failover]\nstatus_page = ""\n[tray]\nrelease_after = "5s"\n' >"$XDG_CONFIG_HOME/understudy/config.toml"

kids() { awk -v p="$1" '$4 == p { print $1 }' /proc/[0-9]*/stat 2>/dev/null || true; }
pss() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# "total_kB name=kB ..." for a process and its children.
footprint() {
  local total=0 parts="" p n k
  for p in "$1" $(kids "$1"); do
    n=$(awk '{ print $2 }' "/proc/$p/stat" 2>/dev/null | tr -d '()') || continue
    k=$(pss "$p"); total=$((total + k)); parts="$parts $n=$((k / 1024))MB"
  done
  echo "$total$parts"
}
# Percent of one core used by a process and its children over $idle seconds.
cpu() {
  local a=0 b=0 p
  for p in "$1" $(kids "$1"); do a=$((a + $(ticks "$p"))); done
  sleep "$idle"
  for p in "$1" $(kids "$1"); do b=$((b + $(ticks "$p"))); done
  awk -v t=$((b - a)) -v s="$idle" 'BEGIN { printf "%.2f", t / s }'
}
window() { for _ in $(seq 1 300); do xdotool search --onlyvisible --name "^$1\$" 2>/dev/null | head -1 && return 0; sleep 0.1; done; return 1; }

OPENAI_BASE_URL="http://127.0.0.1:$port/v1" OPENAI_API_KEY=sk-bench-footprint-0123456789 UNDERSTUDY_LOCAL_MODEL="$MODEL" \
  "$APP" >"$WORK/app.log" 2>&1 &
app=$!; pids+=("$app")
win=$(window Understudy)
sleep "$settle"
open=$(footprint "$app"); open_cpu=$(cpu "$app")
python3 xtask/e2e/wm_close.py "$win"
for _ in $(seq 1 300); do kids "$app" | xargs -r -I{} cat /proc/{}/comm 2>/dev/null | grep -q WebKitWebProc || break; sleep 0.1; done
sleep "$settle"
released=$(footprint "$app"); released_cpu=$(cpu "$app")
left=$(kids "$app" | xargs -r -I{} cat /proc/{}/comm 2>/dev/null | grep WebKit | tr '\n' ' ' || true)
app_alone=$(pss "$app")
# Reopened by a second launch (it hands over to the running app and exits): until the window is
# mapped again, rebuilt web view and all.
t0=$(date +%s%N)
"$APP" >/dev/null 2>&1 || true
window Understudy >/dev/null
reopen_ms=$((($(date +%s%N) - t0) / 1000000))
kill "$app"; wait "$app" 2>/dev/null || true

# The bare window as Tauri ships it (GPU compositing on), then as the app runs it (off: see
# src-tauri/src/window.rs `prefer_cpu_rendering`), so both comparisons are in the report.
bare_run() {
  env "$@" "$BARE" >"$WORK/bare.log" 2>&1 &
  local bare=$!; pids+=("$bare")
  window bare-window >/dev/null
  sleep "$settle"
  footprint "$bare"
  kill "$bare"; wait "$bare" 2>/dev/null || true
}
base=$(bare_run)
base_nogpu=$(bare_run WEBKIT_DISABLE_COMPOSITING_MODE=1)

mb() { echo $(($1 / 1024)); }
o=${open%% *} r=${released%% *} b=${base%% *} bc=${base_nogpu%% *}
echo "footprint (PSS, settled ${settle} s; idle CPU over ${idle} s, % of one core)"
echo "  open, idle:      $(mb "$o") MB  (${open#* })  CPU ${open_cpu} %"
echo "  released (tray): $(mb "$r") MB  (${released#* })  CPU ${released_cpu} %; the app process alone $(mb "$app_alone") MB; WebKit processes left: ${left:-none}"
echo "  reopened after release (a second launch): window mapped in ${reopen_ms} ms"
echo "  bare Tauri:      $(mb "$b") MB  (${base#* })"
echo "  bare Tauri, no GPU compositing: $(mb "$bc") MB  (${base_nogpu#* })"
awk -v o="$o" -v r="$r" -v b="$b" -v c="$bc" 'BEGIN { printf "  open / bare = %.2f   open / bare without compositing = %.2f   released / bare = %.2f   released / open = %.2f\n", o / b, o / c, r / b, r / o }'
