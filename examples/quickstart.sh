#!/usr/bin/env bash
# One command to see Logferry work: builds both binaries, makes development certificates,
# starts an aggregator (file sink) and an agent tailing the sample logs, keeps appending a
# line every second, and shows events as they arrive. Ctrl-C stops everything cleanly.
#
#   examples/quickstart.sh            # run until Ctrl-C
#   examples/quickstart.sh --check    # run until every sample line arrived, then stop (exit 0)
#
# Environment: QS_DIR (work dir, default .quickstart), QS_PROFILE (release|debug, default
# release), QS_BIN_DIR (use binaries from here instead of building), QS_INGEST_PORT (7400),
# QS_ADMIN_PORT (7401), QS_AGENT_ADMIN_PORT (7402).
set -euo pipefail

cd "$(dirname "$0")/.."
check=false
[[ "${1:-}" == "--check" ]] && check=true

export QS_DIR="${QS_DIR:-$PWD/.quickstart}"
export QS_INGEST_PORT="${QS_INGEST_PORT:-7400}" QS_ADMIN_PORT="${QS_ADMIN_PORT:-7401}" QS_AGENT_ADMIN_PORT="${QS_AGENT_ADMIN_PORT:-7402}"
profile="${QS_PROFILE:-release}"

if [[ -n "${QS_BIN_DIR:-}" ]]; then
  bin="$QS_BIN_DIR"
else
  if ! command -v cargo >/dev/null; then
    echo "cargo not found: install the Rust toolchain (https://rustup.rs) first" >&2
    exit 1
  fi
  echo "==> building logferry-agent and logferry-aggregator ($profile)"
  if [[ "$profile" == release ]]; then
    cargo build --release --bins -p logferry-agent -p logferry-aggregator
  else
    cargo build --bins -p logferry-agent -p logferry-aggregator
  fi
  bin="${CARGO_TARGET_DIR:-$PWD/target}/$profile"
fi

rm -rf "$QS_DIR"
mkdir -p "$QS_DIR/logs"
cp examples/logs/*.log "$QS_DIR/logs/"
"$bin/logferry-aggregator" certs --out "$QS_DIR/certs" >/dev/null
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$QS_DIR/agent-token"
chmod 600 "$QS_DIR/agent-token"

"$bin/logferry-aggregator" validate --config examples/aggregator.toml >/dev/null
"$bin/logferry-agent" validate --config examples/agent.toml >/dev/null

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "==> stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop INT TERM EXIT

"$bin/logferry-aggregator" --config examples/aggregator.toml 2>"$QS_DIR/aggregator.log" &
pids+=($!)
"$bin/logferry-agent" --config examples/agent.toml 2>"$QS_DIR/agent.log" &
pids+=($!)

sink="$QS_DIR/events.jsonl"
expected=$(cat "$QS_DIR"/logs/*.log | wc -l)
for _ in $(seq 1 300); do
  [[ -f "$sink" ]] && (( $(wc -l < "$sink") >= expected )) && break
  sleep 0.1
done
got=$( [[ -f "$sink" ]] && wc -l < "$sink" || echo 0)

cat <<MSG
==> running
    aggregator admin:  http://127.0.0.1:$QS_ADMIN_PORT/healthz   http://127.0.0.1:$QS_ADMIN_PORT/metrics
    agent admin:       http://127.0.0.1:$QS_AGENT_ADMIN_PORT/healthz   http://127.0.0.1:$QS_AGENT_ADMIN_PORT/metrics
    file sink:         $sink   ($got of $expected sample lines arrived)
    logs:              $QS_DIR/aggregator.log  $QS_DIR/agent.log
MSG

if $check; then
  if (( got != expected )); then
    echo "FAILED: expected $expected events in $sink, found $got" >&2
    tail -n 20 "$QS_DIR/aggregator.log" "$QS_DIR/agent.log" >&2 || true
    exit 1
  fi
  if ! curl -fsS "http://127.0.0.1:$QS_ADMIN_PORT/healthz" >/dev/null; then
    echo "FAILED: admin endpoint http://127.0.0.1:$QS_ADMIN_PORT/healthz not reachable" >&2
    exit 1
  fi
  echo "OK: every sample line arrived once"
  exit 0
fi

echo "==> appending a line to $QS_DIR/logs/app.log every second; events below (Ctrl-C to stop)"
( n=0; while sleep 1; do n=$((n+1)); printf '{"time":"%s","level":"info","msg":"heartbeat","n":%d}\n' "$(date -u +%FT%T.%3NZ)" "$n" >> "$QS_DIR/logs/app.log"; done ) &
pids+=($!)
tail -n +1 -f "$sink"
