#!/usr/bin/env bash
# Seeds each target's corpus from the test fixtures (recorded requests, provider
# answers, streams and configs); cargo-fuzz then grows it. Corpora stay out of git.
set -euo pipefail
cd "$(dirname "$0")"
fx=../tests/fixtures
seed() {
  local target=$1
  shift
  mkdir -p "corpus/$target"
  for f in "$@"; do
    if [ -f "$f" ]; then cp "$f" "corpus/$target/"; fi
  done
}
seed chat_request $fx/requests/openai/*.json $fx/clients/*.json
seed messages_request $fx/requests/anthropic/*.json $fx/clients/*.json
seed provider_response $fx/upstream/*/*.json
seed sse_stream $fx/upstream/*/*.sse
seed event_stream $fx/upstream/bedrock/*.bin
seed config_and_headers ../config/*.yaml
echo "seeded: $(find corpus -type f | wc -l) files"
