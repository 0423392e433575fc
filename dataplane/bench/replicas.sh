#!/usr/bin/env bash
# Many data-plane replicas on one Redis (see replicas.py): throughput per replica,
# exactness of shared limits, Redis round trips and CPU per call, a slow Redis and a
# Redis restart. About 4 minutes; results to dataplane/bench/RESULTS-replicas.md.
#
#   bash dataplane/bench/replicas.sh
#
# Environment knobs: AI_GATEWAY_BIN (as run.sh), BENCH_PORT_BASE [18300],
# BENCH_SECONDS per throughput round [5], BENCH_CONNS [64].
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/common.sh"
install_missing nginx nginx wrk wrk redis-server redis-server taskset util-linux
python3 -c 'import aiohttp' 2>/dev/null || python3 -m pip install -q aiohttp
AI_GATEWAY_BIN_RESOLVED="$BIN" AI_GATEWAY_BIN_BUILD="$BIN_BUILD" exec python3 "$HERE/replicas.py"
