#!/usr/bin/env bash
# Profile-guided release build of the data plane (`ai-gateway`).
#
#   bash dataplane/pgo/build.sh        # → ~/.cache/ai-gateway-pgo/ai-gateway
#
# 1. builds ai-gateway instrumented (-Cprofile-generate);
# 2. runs it under train.py's load: OpenAI chat and Claude Code's Messages, passed
#    through and translated, streamed and not, on 127.0.0.1, about 10 seconds;
# 3. merges the profile with llvm-profdata and builds again with -Cprofile-use;
# 4. when LLVM's BOLT is at hand, lays the optimised binary's code out again by where
#    the same load spends its time (instrumented with llvm-bolt, trained, rewritten),
#    then runs the load once more on the result as a check.
# A call's cost is dominated by instruction-cache misses across hyper, tokio and the
# gateway; laying out the hot paths together cuts CPU per call by a fifth to a quarter
# (see the README's benchmark section). Both builds take as long as a normal release build; the
# profile's content hash is in its path, so a new profile rebuilds everything.
#
# Needs python3 and an llvm-profdata of the LLVM version rustc was built with: from
# `rustup component add llvm-tools`, or a distribution's llvm-<major> (tried with
# apt-get when missing and root; Debian 12's own archive stops at LLVM 16). BOLT comes
# from Debian's bolt-<major> (any recent one: it rewrites machine code, whatever LLVM
# made it), tried with apt-get too; without it step 4 is skipped and the binary is the
# profile-guided one. BOLT's layout gives a further 3–4 % req/s (the README's
# benchmark section).
#
# Environment knobs (defaults in brackets):
#   AI_GATEWAY_PGO_DIR    where the builds, the profile and the binary go [~/.cache/ai-gateway-pgo]
#   AI_GATEWAY_PGO_CALLS  training calls of each kind per worker [300]
#   AI_GATEWAY_BOLT       0 skips step 4; a path names the llvm-bolt to use [found]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DIR="${AI_GATEWAY_PGO_DIR:-$HOME/.cache/ai-gateway-pgo}"
CALLS="${AI_GATEWAY_PGO_CALLS:-300}"

log() { printf '[pgo %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v python3 >/dev/null 2>&1 || die "python3 is needed for the training load"
llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
host=$(rustc -vV | sed -n 's/^host: //p')
find_profdata() {
    local bundled
    bundled="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
    if [[ -x "$bundled" ]]; then echo "$bundled"; return; fi
    command -v "llvm-profdata-$llvm_major" 2>/dev/null || true
}
PROFDATA=$(find_profdata)
if [[ -z "$PROFDATA" && $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing llvm-$llvm_major (for llvm-profdata) with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "llvm-$llvm_major" >/dev/null 2>&1 \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "llvm-$llvm_major" >/dev/null 2>&1; } \
        || true
    PROFDATA=$(find_profdata)
fi
[[ -n "$PROFDATA" ]] || die "no llvm-profdata for LLVM $llvm_major: rustup component add llvm-tools, or install llvm-$llvm_major"

# Debian's /usr/bin/llvm-bolt-<major> looks for its instrumentation runtime in the wrong
# place; the copy under /usr/lib/llvm-<major>/bin finds it beside itself.
find_bolt() {
    local found
    found=$(ls -d /usr/lib/llvm-*/bin/llvm-bolt 2>/dev/null | sort -V | tail -1)
    [[ -n "$found" ]] && { echo "$found"; return; }
    command -v llvm-bolt 2>/dev/null || true
}
BOLT=""
if [[ "${AI_GATEWAY_BOLT:-1}" != 0 && $(uname -m) == x86_64 ]]; then
    if [[ "${AI_GATEWAY_BOLT:-1}" != 1 ]]; then BOLT="$AI_GATEWAY_BOLT"; else BOLT=$(find_bolt); fi
    if [[ -z "$BOLT" && $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing bolt-19 (LLVM's post-link optimiser) with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bolt-19 >/dev/null 2>&1 \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bolt-19 >/dev/null 2>&1; } \
            || true
        BOLT=$(find_bolt)
    fi
    [[ -n "$BOLT" ]] || log "no llvm-bolt: step 4 skipped, the binary is profile-guided only"
fi

# Cargo prefers CARGO_ENCODED_RUSTFLAGS to RUSTFLAGS: set, it would drop the profile flags.
unset CARGO_ENCODED_RUSTFLAGS
build() { # target dir, extra rustflags
    CARGO_TARGET_DIR="$1" RUSTFLAGS="${RUSTFLAGS:-} $2" \
        cargo build --release --locked -p ai-gateway-dataplane --bin ai-gateway \
        --manifest-path "$REPO/Cargo.toml"
}

# The source the builds read, to tell when it changes under them: a profile recorded on
# one source and applied to another is discarded function by function (rustc's "hash
# mismatch" warnings), and the binary is then slower than either build.
source_state() {
    (cd "$REPO" && git ls-files -z -- Cargo.toml Cargo.lock dataplane/Cargo.toml dataplane/src dataplane/snapshot |
        xargs -0 sha256sum | sha256sum) 2>/dev/null || true
}
SOURCE_AT_START=$(source_state)

log "1/4 instrumented build"
RAW="$DIR/raw"
build "$DIR/generate" "-Cprofile-generate=$RAW"
# Build scripts run instrumented too; only the gateway's own profile is wanted.
rm -rf "$RAW"

log "2/4 training load"
python3 "$HERE/train.py" --gateway "$DIR/generate/release/ai-gateway" --calls "$CALLS"
mkdir -p "$DIR/profiles"
rm -f "$DIR"/profiles/*.profdata
"$PROFDATA" merge -o "$DIR/profiles/merged.profdata" "$RAW"
hash=$(sha256sum "$DIR/profiles/merged.profdata" | cut -c1-16)
PROFILE="$DIR/profiles/$hash.profdata"
mv "$DIR/profiles/merged.profdata" "$PROFILE"

log "3/4 optimised build"
# BOLT moves whole functions only where the link kept its relocations.
build "$DIR/use" "-Cprofile-use=$PROFILE${BOLT:+ -Clink-arg=-Wl,--emit-relocs}"
OPTIMISED="$DIR/use/release/ai-gateway"
# BOLT is an optimisation, not a requirement: when any of its steps fails (a binary it
# cannot read, a rewritten binary that does not serve the load) the profile-guided
# binary is taken instead, and the log says why.
lay_out() { # optimised binary -> rewritten binary, or a failure with its reason on stderr
    local in=$1 out="$DIR/bolt/ai-gateway"
    mkdir -p "$DIR/bolt"
    rm -f "$DIR/bolt/profile.fdata" "$out"
    "$BOLT" "$in" -instrument -o "$DIR/bolt/ai-gateway.instrumented" \
        --instrumentation-file="$DIR/bolt/profile.fdata" >"$DIR/bolt/instrument.log" 2>&1 \
        || { tail -3 "$DIR/bolt/instrument.log" >&2; return 1; }
    python3 "$HERE/train.py" --gateway "$DIR/bolt/ai-gateway.instrumented" --calls "$CALLS" || return 1
    "$BOLT" "$in" -o "$out" -data="$DIR/bolt/profile.fdata" \
        -reorder-blocks=ext-tsp -reorder-functions=cdsort -split-functions -split-all-cold \
        -split-eh -icf=1 -use-gnu-stack >"$DIR/bolt/optimise.log" 2>&1 \
        || { tail -3 "$DIR/bolt/optimise.log" >&2; return 1; }
    # The rewritten binary serves the whole training load before it is taken.
    python3 "$HERE/train.py" --gateway "$out" --calls 20
}
HOW="profile-guided"
if [[ -n "$BOLT" ]]; then
    log "4/4 code layout with $BOLT"
    if lay_out "$OPTIMISED"; then
        OPTIMISED="$DIR/bolt/ai-gateway"
        HOW="profile-guided, BOLT-laid-out"
    else
        log "WARNING: the BOLT step failed (above); installing the profile-guided binary"
    fi
else
    log "4/4 skipped: no BOLT"
fi
install -m 0755 "$OPTIMISED" "$DIR/ai-gateway"
# How it was built, for the bench scripts' reports.
echo "$HOW" > "$DIR/ai-gateway.how"
# Which source it was built from, for the bench scripts to check against.
echo "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet 2>/dev/null || echo '+dirty')" \
    > "$DIR/ai-gateway.rev"
if [[ "$(source_state)" != "$SOURCE_AT_START" ]]; then
    log "WARNING: the source changed during the build: the profile fits neither version; run it again"
fi
log "built $DIR/ai-gateway (profile $PROFILE)"
echo "$DIR/ai-gateway"
