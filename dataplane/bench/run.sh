#!/usr/bin/env bash
# Load benchmark of the ai-gateway data plane: added latency (p50/p99) and max
# throughput versus calling a fake upstream directly and versus nginx as a plain reverse
# proxy, non-streaming and streaming, plus the gateway's RSS over the run.
#
#   bash dataplane/bench/run.sh
#
# Everything runs on 127.0.0.1. The fake upstream and the nginx proxy are nginx
# processes started from configs in a temp dir (not the system service). The proxy
# under test (nginx or the gateway) gets core 1 to itself; the load generator and the
# fake upstream share core 0. Whole run: about 4 minutes (plus up to 45 s of waiting
# and repeating when other processes keep the CPUs busy). Results go to stdout and to
# dataplane/bench/RESULTS.md.
#
# Environment knobs (defaults in brackets):
#   AI_GATEWAY_BIN   gateway binary [the profile-guided build of dataplane/pgo/build.sh
#                    when there is one, else $CARGO_TARGET_DIR/release/ai-gateway]
#   BENCH_PORT_BASE  loopback ports BASE+1..BASE+4 are used [18180]
#   BENCH_RATE       fixed request rate for the latency runs [2000]
#   BENCH_ROUNDS     fixed-rate rounds; each round runs every target once, interleaved [3]
#   BENCH_SECONDS    measured seconds per fixed-rate run, per round [4]
#   BENCH_FIXED_CONNS connections for the fixed-rate runs [4]
#   BENCH_QUIET_WAIT extra seconds, in all, the run may spend waiting for other processes'
#                    CPU load to die down and repeating disturbed measurements [45]
#   BENCH_MAX_SECONDS seconds per max-throughput run [5]
#   BENCH_MAX_ROUNDS max-throughput rounds, targets interleaved in each [3]
#   BENCH_MAX_CONNS  connections for the max-throughput runs [64]
#   BENCH_STREAM_REQUESTS / BENCH_STREAM_CONC  TTFB runs [2000 / 4]
#   BENCH_KEEP=1     keep the temp dir (configs, logs) after the run
#   BENCH_GOVERNED=1 the gateway in the production shape: a gateway key on every call,
#                    limits checked and settled, a file audit log (gateway-governed.yaml.in);
#                    results to RESULTS-governed.md
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
source "$HERE/common.sh"
PORT_BASE="${BENCH_PORT_BASE:-18180}"
FAKE_PORT=$((PORT_BASE + 1))
PROXY_PORT=$((PORT_BASE + 2))
GW_PORT=$((PORT_BASE + 3))
ADMIN_PORT=$((PORT_BASE + 4))
RATE="${BENCH_RATE:-2000}"
SECONDS_FIXED="${BENCH_SECONDS:-4}"
ROUNDS="${BENCH_ROUNDS:-3}"
SECONDS_MAX="${BENCH_MAX_SECONDS:-5}"
MAX_ROUNDS="${BENCH_MAX_ROUNDS:-3}"
MAX_CONNS="${BENCH_MAX_CONNS:-64}"
STREAM_REQS="${BENCH_STREAM_REQUESTS:-2000}"
STREAM_CONC="${BENCH_STREAM_CONC:-4}"
# Fixed-rate runs: RATE/FIXED_CONNS requests/s on each connection. h2load starts every
# connection's timer together, so the load arrives in bursts of FIXED_CONNS requests;
# few connections keep those bursts (and the queueing they cause) small.
FIXED_CONNS="${BENCH_FIXED_CONNS:-4}"
QUIET_WAIT="${BENCH_QUIET_WAIT:-45}"
WARMUP=1
RESULTS_MD="$HERE/RESULTS.md"
# BENCH_KEY (common.sh) is sent on every call: nginx and the fake upstream ignore it.
if [[ $GOVERNED == 1 ]]; then
    RESULTS_MD="$HERE/RESULTS-governed.md"
fi

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- prerequisites

install_missing nginx nginx wrk wrk h2load nghttp2-client curl curl taskset util-linux pgrep procps
PY=python3
$PY -c 'import aiohttp' 2>/dev/null || { log "installing aiohttp with pip"; $PY -m pip install -q aiohttp; }

NPROC=$(nproc)
if ((NPROC >= 2)); then
    PIN_LOAD=(taskset -c 0)   # load generator + fake upstream
    PIN_PROXY=(taskset -c 1)  # the proxy under test: nginx proxy or gateway
else
    log "only $NPROC core: running unpinned, figures will be noisy"
    PIN_LOAD=(); PIN_PROXY=()
fi

for p in "$FAKE_PORT" "$PROXY_PORT" "$GW_PORT" "$ADMIN_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        die "port 127.0.0.1:$p is already in use (set BENCH_PORT_BASE)"
    fi
done

# ---------------------------------------------------------------- workspace, cleanup
WORK=$(mktemp -d /tmp/ai-gateway-bench.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/www/static" "$WORK/tmp" "$WORK/out"
PIDS=()
cleanup() {
    local rc=$?
    set +e
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ "${BENCH_KEEP:-0}" == 1 || $rc -ne 0 ]]; then
        log "temp dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FIX="$REPO/dataplane/tests/fixtures/upstream/openai"
cp "$FIX/chat_text.json" "$WORK/www/static/chat.json"
cp "$FIX/stream_text.sse" "$WORK/www/static/stream.sse"
render "$HERE/fake-upstream.nginx.conf.in" "$WORK/fake.conf"
render "$HERE/nginx-proxy.nginx.conf.in" "$WORK/proxy.conf"
gateway_config "$WORK/gateway.yaml"
printf '%s' '{"model":"bench-model","messages":[{"role":"user","content":"Say hi in one short sentence."}]}' > "$WORK/body.json"
printf '%s' '{"model":"bench-model","stream":true,"messages":[{"role":"user","content":"Say hi in one short sentence."}]}' > "$WORK/body-stream.json"

# ---------------------------------------------------------------- start servers
wait_http() { # url: wait up to 10 s for any HTTP answer
    for _ in $(seq 1 100); do
        curl -s -o /dev/null --max-time 1 "$1" && return 0
        sleep 0.1
    done
    return 1
}
nginx -t -q -c "$WORK/fake.conf" -e "$WORK/fake-error.log" || die "fake upstream config invalid"
nginx -t -q -c "$WORK/proxy.conf" -e "$WORK/proxy-error.log" || die "nginx proxy config invalid"
"${PIN_LOAD[@]}" nginx -c "$WORK/fake.conf" -e "$WORK/fake-error.log" & FAKE_PID=$!; PIDS+=("$FAKE_PID")
"${PIN_PROXY[@]}" nginx -c "$WORK/proxy.conf" -e "$WORK/proxy-error.log" & PROXY_PID=$!; PIDS+=("$PROXY_PID")
"${PIN_PROXY[@]}" "$BIN" --config "$WORK/gateway.yaml" --listen "127.0.0.1:$GW_PORT" \
    --admin-listen "127.0.0.1:$ADMIN_PORT" --log-level warn >/dev/null 2>"$WORK/gateway.log" & GW_PID=$!; PIDS+=("$GW_PID")
wait_http "http://127.0.0.1:$FAKE_PORT/" || die "fake upstream did not start: $(cat "$WORK/fake-error.log")"
wait_http "http://127.0.0.1:$PROXY_PORT/" || die "nginx proxy did not start: $(cat "$WORK/proxy-error.log")"
wait_http "http://127.0.0.1:$ADMIN_PORT/healthz" || die "gateway did not start: $(cat "$WORK/gateway.log")"

declare -A URL=(
    [direct]="http://127.0.0.1:$FAKE_PORT/v1/chat/completions"
    [nginx]="http://127.0.0.1:$PROXY_PORT/v1/chat/completions"
    [gateway]="http://127.0.0.1:$GW_PORT/v1/chat/completions"
)
declare -A PID_OF=([nginx]="$PROXY_PID" [gateway]="$GW_PID" [direct]="$FAKE_PID")
TARGETS=(direct nginx gateway)

# Sanity: each target answers both shapes with 200 and the expected body.
for t in "${TARGETS[@]}"; do
    out=$(curl -s -w '\n%{http_code}' --max-time 5 -H 'Content-Type: application/json' -H "Authorization: Bearer $BENCH_KEY" --data-binary "@$WORK/body.json" "${URL[$t]}")
    [[ "${out##*$'\n'}" == 200 && "$out" == *'"chat.completion"'* ]] || die "$t non-stream sanity check failed: $out"
    out=$(curl -s -N -w '\n%{http_code} %{content_type}' --max-time 5 -H 'Content-Type: application/json' -H "Authorization: Bearer $BENCH_KEY" -H 'X-Bench-Stream: 1' --data-binary "@$WORK/body-stream.json" "${URL[$t]}")
    [[ "${out##*$'\n'}" == "200 text/event-stream"* && "$out" == *'data: [DONE]'* ]] || die "$t stream sanity check failed: $out"
done
log "servers up: fake :$FAKE_PORT, nginx proxy :$PROXY_PORT, gateway :$GW_PORT (pid $GW_PID)"

# ---------------------------------------------------------------- RSS sampler
echo idle > "$WORK/phase"
(
    while kill -0 "$GW_PID" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/{print $2}' "/proc/$GW_PID/status" 2>/dev/null || true)
        [[ -n "$rss" ]] && echo "$(date +%s) $rss $(cat "$WORK/phase")"
        sleep 1
    done
) > "$WORK/out/rss.log" &
RSS_PID=$!; PIDS+=("$RSS_PID")
phase() { echo "$1" > "$WORK/phase"; log "$1"; }

snap() { $PY "$HERE/report.py" cpusnap "$$" "$FAKE_PID" "$PROXY_PID" "$GW_PID" "$RSS_PID"; }
# cpu_into FILE SNAP0 SNAP1 SERVER_PID: adds per-core busy %, the server's CPU % and the
# CPU % used by processes this script did not start to a result file.
cpu_into() { $PY "$HERE/report.py" merge "$1" "$($PY "$HERE/report.py" cpudiff "$2" "$3" "$4")"; }

# Other processes on the machine distort every figure. Each measurement records how much
# CPU they took meanwhile; a disturbed one is repeated once after waiting for quiet. The
# extra time all this takes (waiting and repeating) is bounded by QUIET_WAIT seconds.
QUIET_LEFT=$QUIET_WAIT
REPEATS=0
OTHER_LIMIT=10   # % of one core
other_of() { # result file -> % of a core used by others (plus steal) during it
    $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print((d.get("other_cpu_pct") or 0)+(d.get("steal_pct") or 0))' "$1"
}
wait_quiet() { # 0 once a 1 s sample shows the machine quiet, 1 when the budget is spent
    local a b o t0=$SECONDS
    while ((QUIET_LEFT - (SECONDS - t0) > 0)); do
        a=$(snap); sleep 1; b=$(snap)
        $PY "$HERE/report.py" cpudiff "$a" "$b" "$GW_PID" > "$WORK/quiet.json"
        o=$(other_of "$WORK/quiet.json")
        if ((o <= OTHER_LIMIT)); then QUIET_LEFT=$((QUIET_LEFT - (SECONDS - t0))); return 0; fi
    done
    QUIET_LEFT=$((QUIET_LEFT - (SECONDS - t0)))
    return 1
}
checked() { # RESULT_FILE CMD...: runs a measurement, repeats it once if it was disturbed
    local res=$1 o t0; shift
    "$@"
    o=$(other_of "$res")
    if ((o > OTHER_LIMIT && QUIET_LEFT > 0)); then
        log "  disturbed: other processes took ${o}% of a core; waiting for quiet and repeating (${QUIET_LEFT}s of extra time left)"
        if wait_quiet; then
            t0=$SECONDS; "$@"; QUIET_LEFT=$((QUIET_LEFT - (SECONDS - t0))); REPEATS=$((REPEATS + 1))
        else
            log "  still busy: keeping the disturbed figure"
        fi
    fi
}

if ! wait_quiet; then log "the machine is busy (other processes): figures will be disturbed"; fi

# ---------------------------------------------------------------- (a) fixed rate
# Short rounds, targets interleaved, so a burst of noise from outside (this is often a
# shared VM) lands on one round of one target rather than on a whole target; the report
# gives the median over rounds and each round's p99.
PER_CONN=$((RATE / FIXED_CONNS))
fixed_run() { # mode target round
    local mode=$1 t=$2 round=$3 body="$WORK/body.json" hdr=() s0 s1
    [[ $mode == stream ]] && { body="$WORK/body-stream.json"; hdr=(-H 'X-Bench-Stream: 1'); }
    local logf="$WORK/out/h2-$mode-$t-$round.log" res="$WORK/out/fixed-$mode-$t-r$round.json"
    rm -f "$logf"   # h2load appends
    s0=$(snap)
    timeout $((SECONDS_FIXED + WARMUP + 30)) "${PIN_LOAD[@]}" h2load --h1 -t 1 -c "$FIXED_CONNS" \
        --rps "$PER_CONN" -D "$SECONDS_FIXED" --warm-up-time "$WARMUP" \
        -d "$body" -H 'Content-Type: application/json' -H "Authorization: Bearer $BENCH_KEY" "${hdr[@]}" \
        --log-file "$logf" "${URL[$t]}" > "$WORK/out/h2-$mode-$t-$round.txt" 2>&1 \
        || die "h2load failed: $(tail -5 "$WORK/out/h2-$mode-$t-$round.txt")"
    s1=$(snap)
    $PY "$HERE/report.py" h2log "$logf" "$SECONDS_FIXED" > "$res"
    cpu_into "$res" "$s0" "$s1" "${PID_OF[$t]}"
    rm -f "$logf"
}
for mode in nonstream stream; do
    for ((round = 1; round <= ROUNDS; round++)); do
        for t in "${TARGETS[@]}"; do
            phase "fixed ${RATE} req/s, $mode, $t, round $round/$ROUNDS"
            checked "$WORK/out/fixed-$mode-$t-r$round.json" fixed_run "$mode" "$t" "$round"
        done
    done
done

# ---------------------------------------------------------------- (b) max throughput
max_run() { # mode target round
    local mode=$1 t=$2 round=$3 body="$WORK/body.json" stream=0 s0 s1 res="$WORK/out/max-$1-$2-r$3.json"
    [[ $mode == stream ]] && { body="$WORK/body-stream.json"; stream=1; }
    # one second of warm-up so connections and pools exist
    BENCH_BODY="$body" BENCH_STREAM=$stream timeout 10 "${PIN_LOAD[@]}" wrk -t 1 -c "$MAX_CONNS" -d 1s \
        -s "$HERE/post.lua" "${URL[$t]}" >/dev/null 2>&1 || true
    s0=$(snap)
    BENCH_BODY="$body" BENCH_STREAM=$stream timeout $((SECONDS_MAX + 30)) "${PIN_LOAD[@]}" wrk -t 1 \
        -c "$MAX_CONNS" -d "${SECONDS_MAX}s" -s "$HERE/post.lua" "${URL[$t]}" > "$WORK/out/wrk-$mode-$t-$round.txt" 2>&1 \
        || die "wrk failed: $(tail -5 "$WORK/out/wrk-$mode-$t-$round.txt")"
    s1=$(snap)
    grep '^WRK_JSON ' "$WORK/out/wrk-$mode-$t-$round.txt" | sed 's/^WRK_JSON //' > "$res" \
        && [[ -s "$res" ]] || die "no wrk summary for $t: $(tail -5 "$WORK/out/wrk-$mode-$t-$round.txt")"
    cpu_into "$res" "$s0" "$s1" "${PID_OF[$t]}"
}
# Rounds with the targets interleaved, as for the fixed rate: this VM's speed drifts by
# tens of percent over minutes, so gateway and nginx are compared round by round.
for mode in nonstream stream; do
    for ((round = 1; round <= MAX_ROUNDS; round++)); do
        for t in "${TARGETS[@]}"; do
            phase "max throughput, $MAX_CONNS connections, $mode, $t, round $round/$MAX_ROUNDS"
            checked "$WORK/out/max-$mode-$t-r$round.json" max_run "$mode" "$t" "$round"
        done
    done
done

# ---------------------------------------------------------------- streaming TTFB / TTLB
ttfb_run() { # target
    local t=$1 s0 s1 res="$WORK/out/ttfb-$1.json"
    s0=$(snap)
    timeout 90 "${PIN_LOAD[@]}" $PY "$HERE/stream_client.py" "${URL[$t]}" "$WORK/body-stream.json" \
        "$STREAM_REQS" "$STREAM_CONC" > "$res" || die "stream client failed for $t"
    s1=$(snap)
    cpu_into "$res" "$s0" "$s1" "${PID_OF[$t]}"
}
for t in "${TARGETS[@]}"; do
    phase "stream TTFB/TTLB, $STREAM_REQS requests at concurrency $STREAM_CONC, $t"
    checked "$WORK/out/ttfb-$t.json" ttfb_run "$t"
done

phase "after load"
sleep 2
kill -0 "$GW_PID" 2>/dev/null || die "the gateway died during the run: $(tail -20 "$WORK/gateway.log")"

# ---------------------------------------------------------------- report
{
    echo "date=$(date -u +'%Y-%m-%d %H:%M UTC')"
    echo "nproc=$NPROC"
    echo "cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
    echo "kernel=$(uname -r)"
    echo "rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet 2>/dev/null || echo '+dirty')"
    echo "binary=$BIN"
    echo "build=$BIN_BUILD"
    echo "nginx=$(nginx -v 2>&1 | sed 's#.*/##')"
    echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
    echo "h2load=$(h2load --version | awk '{print $2}')"
    echo "rate=$RATE"; echo "fixed_seconds=$SECONDS_FIXED"; echo "fixed_conns=$FIXED_CONNS"; echo "warmup=$WARMUP"; echo "rounds=$ROUNDS"
    echo "max_seconds=$SECONDS_MAX"; echo "max_conns=$MAX_CONNS"; echo "max_rounds=$MAX_ROUNDS"
    echo "governed=$GOVERNED"
    echo "stream_requests=$STREAM_REQS"; echo "stream_conc=$STREAM_CONC"
    echo "quiet_waited=$((QUIET_WAIT - QUIET_LEFT))"
    echo "repeats=$REPEATS"
    echo "pinned=$([[ ${#PIN_LOAD[@]} -gt 0 ]] && echo yes || echo no)"
} > "$WORK/out/meta.txt"
$PY "$HERE/report.py" render "$WORK/out" > "$WORK/RESULTS.md"
if [[ $GOVERNED == 1 ]]; then
    # The report's setup paragraph describes the open configuration; say which ran.
    sed -i '1a\
\
**Production shape** (`BENCH_GOVERNED=1`, `gateway-governed.yaml.in`): every call carries a gateway key, the key is checked, per-user and global limits (requests, tokens a minute, tokens a day) are checked and settled in memory, and every call writes its audit line to a file; where the setup below says auth `none` and audit to stdout, read that instead.' "$WORK/RESULTS.md"
fi
cp "$WORK/RESULTS.md" "$RESULTS_MD"
cat "$RESULTS_MD"
log "written to $RESULTS_MD"
