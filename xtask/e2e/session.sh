#!/usr/bin/env bash
# One headless desktop session for the end-to-end tests; run by `cargo xtask test` as
#   xvfb-run -a -s "-screen 0 1280x800x24 -nolisten tcp" dbus-run-session -- bash xtask/e2e/session.sh
# It starts a notification server (dunst) and a StatusNotifierItem tray host, waits for both on
# D-Bus, then runs each e2e suite against the real app binary through tauri-driver.
# Env in: UNDERSTUDY_APP_BIN, UNDERSTUDY_E2E_OUT, UNDERSTUDY_E2E_WORK (a scratch dir),
# UNDERSTUDY_LLMOCK (the llmock binary: the fault-injecting OpenAI upstream of the chat, hostile
# and failover suites), UNDERSTUDY_E2E_TINY_GGUF (the offline model of the failover suite and the
# download of the models suite), UNDERSTUDY_E2E_SMOLLM2_GGUF (SmolLM2-135M-Instruct, the real
# instruct model of the instruct suite), UNDERSTUDY_HF_MIRROR (testkit's hf-mirror binary).
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${UNDERSTUDY_APP_BIN:?}" "${UNDERSTUDY_E2E_OUT:?}" "${UNDERSTUDY_E2E_WORK:?}" "${UNDERSTUDY_LLMOCK:?}"
export XDG_RUNTIME_DIR="$UNDERSTUDY_E2E_WORK/runtime"
mkdir -p "$XDG_RUNTIME_DIR" "$UNDERSTUDY_E2E_OUT"
chmod 700 "$XDG_RUNTIME_DIR"
logs="$UNDERSTUDY_E2E_OUT/logs"
mkdir -p "$logs"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

has_name() {
  busctl --user call org.freedesktop.DBus / org.freedesktop.DBus NameHasOwner s "$1" 2>/dev/null | grep -q true
}
wait_for() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 100); do "$@" && return 0; sleep 0.1; done
  echo "e2e: timed out waiting for $what" >&2
  return 1
}

dunst >"$logs/dunst.log" 2>&1 &
pids+=($!)
wait_for "dunst on D-Bus" has_name org.freedesktop.Notifications || { cat "$logs/dunst.log" >&2; exit 1; }
# gtk-sni-tray-standalone sometimes dies while starting (a D-Bus race: "Pattern match failure
# in do expression at app/Main.hs:177", about 1 start in 4 on a busy machine): start it again
# until it holds the watcher name.
start_tray_host() {
  local attempt pid
  for attempt in 1 2 3 4 5; do
    gtk-sni-tray-standalone --bottom --end --size 40 --watcher >>"$logs/tray-host.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
      if has_name org.kde.StatusNotifierWatcher; then pids+=("$pid"); return 0; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    echo "e2e: the tray host did not come up (attempt $attempt), starting it again" >&2
  done
  cat "$logs/tray-host.log" >&2
  return 1
}
start_tray_host

# suite NAME [VAR=VALUE...]: a fresh tauri-driver (the app inherits its environment), one
# vitest e2e file, then the driver is stopped so the next suite starts a clean app.
# UNDERSTUDY_E2E_ONLY=NAME runs that suite alone (while working on it).
suite() {
  local name=$1; shift
  if [[ -n "${UNDERSTUDY_E2E_ONLY:-}" && "$name" != "$UNDERSTUDY_E2E_ONLY" ]]; then return 0; fi
  local home="$UNDERSTUDY_E2E_WORK/$name"
  mkdir -p "$home/config" "$home/data"
  # The tray host can also die after it took the watcher name (the same race): a suite needs it.
  has_name org.kde.StatusNotifierWatcher || start_tray_host
  # A user with nothing set up: no key, no model, the default (XDG) config location.
  env -u OPENAI_API_KEY -u UNDERSTUDY_LOCAL_MODEL -u OPENAI_BASE_URL -u UNDERSTUDY_CONFIG \
    -u UNDERSTUDY_DATA_DIR XDG_CONFIG_HOME="$home/config" XDG_DATA_HOME="$home/data" "$@" \
    tauri-driver --port 4444 >"$logs/tauri-driver-$name.log" 2>&1 &
  local driver=$!
  wait_for "tauri-driver on :4444" bash -c 'exec 3<>/dev/tcp/127.0.0.1/4444' 2>/dev/null
  local rc=0
  env "$@" npm --prefix ui run --silent e2e -- "e2e/$name.e2e.ts" || rc=$?
  kill "$driver" 2>/dev/null || true
  wait "$driver" 2>/dev/null || true
  pkill -f WebKitWebDriver 2>/dev/null || true
  return $rc
}

# The installed package (the install step of `cargo xtask test`, after `apt-get install`): run
# only when asked for by name, against the binary the desktop entry starts.
if [[ "${UNDERSTUDY_E2E_ONLY:-}" == install ]]; then
  : "${UNDERSTUDY_E2E_DESKTOP_FILE:?}" "${UNDERSTUDY_E2E_VERSION:?}"
  mkdir -p "$UNDERSTUDY_E2E_WORK/install/home"
  suite install "HOME=$UNDERSTUDY_E2E_WORK/install/home"
  echo "e2e: the installed package passed"
  exit 0
fi

suite smoke
bad="$UNDERSTUDY_E2E_WORK/config-problem/config/understudy/config.toml"
mkdir -p "$(dirname "$bad")"
printf 'mode = "auto"\n[failover]\nstall_timout = "3s"\n' >"$bad"
suite config-problem UNDERSTUDY_E2E_BAD_CONFIG=1 \
  "UNDERSTUDY_E2E_BAD_CONFIG_EXPECT=config.toml:3,failover.stall_timout,unknown field"
# A damaged history: garbage bytes (and a -wal) where the database belongs.
damaged="$UNDERSTUDY_E2E_WORK/bad-disk/data/understudy"
mkdir -p "$damaged"
head -c 65536 /dev/urandom >"$UNDERSTUDY_E2E_WORK/bad-disk/garbage.orig"
cp "$UNDERSTUDY_E2E_WORK/bad-disk/garbage.orig" "$damaged/understudy.db"
echo "wal of the damaged file" >"$damaged/understudy.db-wal"
suite bad-disk UNDERSTUDY_E2E_BAD_DISK=1 "UNDERSTUDY_E2E_BAD_DISK_DIR=$damaged"
# Chat against a real HTTP upstream: llmock on a free loopback port, reached the way SDK users
# point tools elsewhere (OPENAI_BASE_URL), with the key from OPENAI_API_KEY.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$UNDERSTUDY_LLMOCK" serve --host 127.0.0.1 --port "$port" --log-level warning >"$logs/llmock.log" 2>&1 &
pids+=($!)
wait_for "llmock on :$port" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
# Tests never reach the internet: no status-page polling.
mkdir -p "$UNDERSTUDY_E2E_WORK/chat/config/understudy" "$UNDERSTUDY_E2E_WORK/failover/config/understudy"
printf '[failover]\nstatus_page = ""\n' >"$UNDERSTUDY_E2E_WORK/chat/config/understudy/config.toml"
# Failover: short open time and probe interval so recovery shows within seconds.
gwport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '[failover]\nstatus_page = ""\nopen_for = "2s"\nprobe_interval = "1s"\n[gateway]\nlisten = "127.0.0.1:%s"\n' "$gwport" \
  >"$UNDERSTUDY_E2E_WORK/failover/config/understudy/config.toml"
suite chat "OPENAI_BASE_URL=http://127.0.0.1:$port/v1" OPENAI_API_KEY=sk-e2e-chat-0123456789abcdef \
  "UNDERSTUDY_E2E_LLMOCK=http://127.0.0.1:$port"
curl -s -X POST "http://127.0.0.1:$port/_llmock/reset" >/dev/null
# Hostile answers: the chat set-up; the window must stay on the app whatever an answer holds.
mkdir -p "$UNDERSTUDY_E2E_WORK/hostile/config/understudy"
cp "$UNDERSTUDY_E2E_WORK/chat/config/understudy/config.toml" "$UNDERSTUDY_E2E_WORK/hostile/config/understudy/"
suite hostile "OPENAI_BASE_URL=http://127.0.0.1:$port/v1" OPENAI_API_KEY=sk-e2e-chat-0123456789abcdef \
  "UNDERSTUDY_E2E_LLMOCK=http://127.0.0.1:$port"
curl -s -X POST "http://127.0.0.1:$port/_llmock/reset" >/dev/null
# Failover: the same upstream, now with an offline model (the tiny test GGUF) to fall back on.
suite failover "OPENAI_BASE_URL=http://127.0.0.1:$port/v1" OPENAI_API_KEY=sk-e2e-chat-0123456789abcdef \
  "UNDERSTUDY_E2E_LLMOCK=http://127.0.0.1:$port" "UNDERSTUDY_LOCAL_MODEL=${UNDERSTUDY_E2E_TINY_GGUF:?}" \
  "UNDERSTUDY_E2E_GATEWAY=127.0.0.1:$gwport"
curl -s -X POST "http://127.0.0.1:$port/_llmock/reset" >/dev/null
# A real instruct model (SmolLM2) answers a failover in the window: the chat set-up, OpenAI failing.
if [[ -z "${UNDERSTUDY_E2E_ONLY:-}" || "$UNDERSTUDY_E2E_ONLY" == instruct ]]; then
  mkdir -p "$UNDERSTUDY_E2E_WORK/instruct/config/understudy"
  cp "$UNDERSTUDY_E2E_WORK/chat/config/understudy/config.toml" "$UNDERSTUDY_E2E_WORK/instruct/config/understudy/"
  suite instruct "OPENAI_BASE_URL=http://127.0.0.1:$port/v1" OPENAI_API_KEY=sk-e2e-chat-0123456789abcdef \
    "UNDERSTUDY_E2E_LLMOCK=http://127.0.0.1:$port" "UNDERSTUDY_LOCAL_MODEL=${UNDERSTUDY_E2E_SMOLLM2_GGUF:?}"
  curl -s -X POST "http://127.0.0.1:$port/_llmock/reset" >/dev/null
fi
# Tray and notifications: short times so an outage and its recovery fit in seconds.
mkdir -p "$UNDERSTUDY_E2E_WORK/tray/config/understudy"
printf '[failover]\nstatus_page = ""\nopen_for = "2s"\nprobe_interval = "1s"\n[notifications]\nrecovery_after = "3s"\n[tray]\nhold = "2s"\n' \
  >"$UNDERSTUDY_E2E_WORK/tray/config/understudy/config.toml"
mkdir -p "$UNDERSTUDY_E2E_WORK/tray/home"
suite tray "HOME=$UNDERSTUDY_E2E_WORK/tray/home" "UNDERSTUDY_E2E_CONFIG=$UNDERSTUDY_E2E_WORK/tray/config/understudy/config.toml" "OPENAI_BASE_URL=http://127.0.0.1:$port/v1" OPENAI_API_KEY=sk-e2e-chat-0123456789abcdef \
  "UNDERSTUDY_E2E_LLMOCK=http://127.0.0.1:$port" "UNDERSTUDY_LOCAL_MODEL=${UNDERSTUDY_E2E_TINY_GGUF:?}"
# Released in the tray: a 2 s grace before the closed window's web view goes.
mkdir -p "$UNDERSTUDY_E2E_WORK/release/config/understudy"
# The in-app gateway serves (no token: the test is the other tool) while the window is gone.
relgw=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '[failover]\nstatus_page = ""\n[tray]\nrelease_after = "2s"\n[gateway]\nenabled = true\nlisten = "127.0.0.1:%s"\nrequire_token = false\n' "$relgw" \
  >"$UNDERSTUDY_E2E_WORK/release/config/understudy/config.toml"
suite release "OPENAI_BASE_URL=http://127.0.0.1:$port/v1" OPENAI_API_KEY=sk-e2e-chat-0123456789abcdef \
  "UNDERSTUDY_E2E_LLMOCK=http://127.0.0.1:$port" "UNDERSTUDY_E2E_GATEWAY=127.0.0.1:$relgw" "UNDERSTUDY_LOCAL_MODEL=${UNDERSTUDY_E2E_TINY_GGUF:?}"
curl -s -X POST "http://127.0.0.1:$port/_llmock/reset" >/dev/null
# A chain of providers: a second llmock as the backup cloud (Groq), the first as OpenAI; the
# backup's key is entered in Settings during the suite.
port2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$UNDERSTUDY_LLMOCK" serve --host 127.0.0.1 --port "$port2" --log-level warning >"$logs/llmock-backup.log" 2>&1 &
pids+=($!)
wait_for "llmock on :$port2" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port2" 2>/dev/null
mkdir -p "$UNDERSTUDY_E2E_WORK/providers/config/understudy"
printf '# two llmock upstreams as two providers\n[failover]\nstatus_page = ""\nopen_for = "2s"\nprobe_interval = "1s"\n[notifications]\nrecovery_after = "3s"\n[tray]\nhold = "2s"\n\n[[providers]]\nid = "openai"\nbase_url = "http://127.0.0.1:%s/v1"\n\n[[providers]]\nid = "groq"\nbase_url = "http://127.0.0.1:%s/v1"\nmodel = "llama-3.3-70b"\n' "$port" "$port2" \
  >"$UNDERSTUDY_E2E_WORK/providers/config/understudy/config.toml"
suite providers "OPENAI_BASE_URL=http://127.0.0.1:$port/v1" OPENAI_API_KEY=sk-e2e-chat-0123456789abcdef \
  "UNDERSTUDY_E2E_LLMOCK=http://127.0.0.1:$port" "UNDERSTUDY_E2E_LLMOCK_BACKUP=http://127.0.0.1:$port2" \
  "UNDERSTUDY_E2E_CONFIG_FILE=$UNDERSTUDY_E2E_WORK/providers/config/understudy/config.toml" "UNDERSTUDY_LOCAL_MODEL=${UNDERSTUDY_E2E_TINY_GGUF:?}"
curl -s -X POST "http://127.0.0.1:$port/_llmock/reset" >/dev/null
# An outage with nothing to fall back on: OpenAI unreachable (a loopback port nobody listens on)
# and no offline model.
mkdir -p "$UNDERSTUDY_E2E_WORK/no-model/config/understudy"
printf '[failover]\nstatus_page = ""\nprobe_interval = "1s"\n' >"$UNDERSTUDY_E2E_WORK/no-model/config/understudy/config.toml"
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
suite no-model UNDERSTUDY_E2E_NO_MODEL=1 "OPENAI_BASE_URL=http://127.0.0.1:$closed/v1" OPENAI_API_KEY=sk-e2e-nomodel-0123456789abcdef
# Models: a Hugging Face stand-in serving the tiny GGUF slowly enough to watch it download.
mkdir -p "$UNDERSTUDY_E2E_WORK/hub/test-org/Tiny-GGUF"
cp "${UNDERSTUDY_E2E_TINY_GGUF:?}" "$UNDERSTUDY_E2E_WORK/hub/test-org/Tiny-GGUF/tiny-Q4_K_M.gguf"
coproc MIRROR { exec "${UNDERSTUDY_HF_MIRROR:?}" "$UNDERSTUDY_E2E_WORK/hub" --rate 200000; }
pids+=($MIRROR_PID)
read -r line <&"${MIRROR[0]}"
mirror_port=${line#listening on }
suite models "HF_ENDPOINT=http://127.0.0.1:$mirror_port"
echo "e2e: all suites passed; screenshots in $UNDERSTUDY_E2E_OUT"
