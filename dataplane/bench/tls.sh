#!/usr/bin/env bash
# TLS and HTTP/2 to the upstream against nginx proxying to the same TLS upstream (see
# tls.py). About 3 minutes; results to dataplane/bench/RESULTS-tls.md.
#
#   bash dataplane/bench/tls.sh
#
# Environment knobs: AI_GATEWAY_BIN (as run.sh), BENCH_PORT_BASE [18400],
# BENCH_SECONDS [5], BENCH_CONNS [64], BENCH_ROUNDS [3].
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/common.sh"
install_missing nginx nginx wrk wrk openssl openssl taskset util-linux ss iproute2 curl curl
AI_GATEWAY_BIN_RESOLVED="$BIN" AI_GATEWAY_BIN_BUILD="$BIN_BUILD" exec python3 "$HERE/tls.py"
