# Sourced by the bench scripts: which gateway binary they measure, and how it was built.
# AI_GATEWAY_BIN wins; else the profile-guided build from dataplane/pgo/build.sh, the
# way the image ships; else the plain release build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ai-gateway-target}"
PGO_BIN="${AI_GATEWAY_PGO_DIR:-$HOME/.cache/ai-gateway-pgo}/ai-gateway"
if [[ -n "${AI_GATEWAY_BIN:-}" ]]; then
    BIN="$AI_GATEWAY_BIN"
elif [[ -x "$PGO_BIN" ]]; then
    BIN="$PGO_BIN"
else
    BIN="$CARGO_TARGET_DIR/release/ai-gateway"
fi
if [[ "$BIN" == "$PGO_BIN" ]]; then
    BIN_BUILD="profile-guided release build of $(cat "$PGO_BIN.rev" 2>/dev/null || echo 'unknown source')"
    head_rev="$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [[ "$BIN_BUILD" != *" of $head_rev" ]]; then
        echo "WARNING: measuring $BIN_BUILD, not HEAD ($head_rev): rerun dataplane/pgo/build.sh" >&2
    fi
else
    BIN_BUILD="release build"
fi
[[ -x "$BIN" ]] || {
    echo "gateway binary not found at $BIN: bash dataplane/pgo/build.sh (as shipped), or cargo build --release -p ai-gateway-dataplane, or set AI_GATEWAY_BIN" >&2
    exit 1
}
