#!/usr/bin/env bash
# User-space instructions the gateway executes per call, counted by callgrind: a
# figure that, unlike time, does not drift with the machine, so per-call work can be
# compared between builds to a fraction of a percent.
#
#   bash dataplane/bench/instructions.sh [REQUESTS]
#
# The gateway (release build) runs on one core under valgrind in front of the same
# fake upstream as run.sh (nginx serving the OpenAI fixtures), on 127.0.0.1. After
# 200 warm-up calls, REQUESTS [1000] calls are counted, non-streaming and then
# streaming. Kernel work (socket reads and writes) is not counted. Takes about a
# minute; installs valgrind, nginx and nghttp2-client with apt-get when missing.
#
#   AI_GATEWAY_BIN   gateway binary [as in run.sh: common.sh]
#   BENCH_PORT_BASE  loopback ports BASE+1..BASE+3 are used [18280]
#   BENCH_KEEP=1     keep the callgrind profiles (callgrind_annotate reads them)
#   BENCH_GOVERNED=1 the production shape of run.sh's BENCH_GOVERNED: a gateway key on
#                    every call, limits checked and settled, audit lines to a file
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
source "$HERE/common.sh"
REQUESTS="${1:-1000}"
PORT_BASE="${BENCH_PORT_BASE:-18280}"
FAKE_PORT=$((PORT_BASE + 1))
GW_PORT=$((PORT_BASE + 2))
ADMIN_PORT=$((PORT_BASE + 3))

log() { printf '[instructions %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

install_missing valgrind valgrind nginx nginx h2load nghttp2-client

WORK=$(mktemp -d /tmp/ai-gateway-instructions.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/www/static" "$WORK/tmp"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ "${BENCH_KEEP:-0}" == 1 ]]; then log "profiles kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

AUTH=()
[[ $GOVERNED == 1 ]] && AUTH=(-H "authorization: Bearer $BENCH_KEY")
FIX="$REPO/dataplane/tests/fixtures/upstream/openai"
cp "$FIX/chat_text.json" "$WORK/www/static/chat.json"
cp "$FIX/stream_text.sse" "$WORK/www/static/stream.sse"
render "$HERE/fake-upstream.nginx.conf.in" "$WORK/fake.conf"
gateway_config "$WORK/gateway.yaml"
printf '%s' '{"model":"bench-model","messages":[{"role":"user","content":"Say hi in one short sentence."}]}' > "$WORK/nonstream.json"
printf '%s' '{"model":"bench-model","stream":true,"messages":[{"role":"user","content":"Say hi in one short sentence."}]}' > "$WORK/stream.json"

nginx -c "$WORK/fake.conf" -e "$WORK/fake-error.log" & PIDS+=($!)

# One core: the gateway then runs its single-threaded runtime, as when pinned in run.sh.
PIN=()
command -v taskset >/dev/null 2>&1 && (($(nproc) > 1)) && PIN=(taskset -c 1)

count() { # mode -> instructions per call
    local mode=$1 out="$WORK/callgrind.$1" headers=()
    [[ $mode == stream ]] && headers=(-H 'x-bench-stream: 1')
    "${PIN[@]}" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
        "$BIN" --config "$WORK/gateway.yaml" --listen "127.0.0.1:$GW_PORT" \
        --admin-listen "127.0.0.1:$ADMIN_PORT" --log-level warn >/dev/null 2>"$WORK/valgrind.$mode.log" &
    local vg=$!
    for _ in $(seq 1 300); do
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$ADMIN_PORT/healthz" && break
        kill -0 "$vg" 2>/dev/null || die "gateway under valgrind exited: $(tail -5 "$WORK/valgrind.$mode.log")"
        sleep 0.2
    done
    load() {
        h2load --h1 -n "$1" -c 4 -d "$WORK/$mode.json" -H 'content-type: application/json' \
            "${AUTH[@]}" "${headers[@]}" "http://127.0.0.1:$GW_PORT/v1/chat/completions" 2>&1 |
            grep -E '^requests:' | grep -q " $1 succeeded" || die "$mode: not every call succeeded"
    }
    load 200
    callgrind_control -i on "$vg" >/dev/null 2>&1
    load "$REQUESTS"
    callgrind_control -i off "$vg" >/dev/null 2>&1
    kill -TERM "$vg"
    wait "$vg" || true
    local total
    total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    [[ -n "$total" ]] || die "$mode: no callgrind totals"
    echo $((total / REQUESTS))
}

nonstream=$(count nonstream)
stream=$(count stream)
shape=ungoverned
[[ $GOVERNED == 1 ]] && shape=governed
printf 'instructions per call (%s, %s, %s calls each, user space): non-streaming %s, streaming %s\n' \
    "$BIN_BUILD" "$shape" "$REQUESTS" "$nonstream" "$stream"
