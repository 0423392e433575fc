# Sourced by the bench scripts: which gateway binary they measure and how it was built,
# and the packages they need. AI_GATEWAY_BIN wins; else the profile-guided build from dataplane/pgo/build.sh, the
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
    BIN_BUILD="$(cat "$PGO_BIN.how" 2>/dev/null || echo profile-guided) release build of $(cat "$PGO_BIN.rev" 2>/dev/null || echo 'unknown source')"
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

# The gateway's shape under load: BENCH_GOVERNED=1 is production's (a gateway key on
# every call, limits checked and settled, audit lines to a file), else auth and limits
# off. gateway_config renders the matching config into $WORK; BENCH_KEY is the key.
GOVERNED="${BENCH_GOVERNED:-0}"
export BENCH_KEY=gw_bench_key
KEY_SHA=$(printf %s "$BENCH_KEY" | sha256sum | cut -d' ' -f1)
# render TEMPLATE OUT: fills in the placeholders the bench templates use.
render() {
    sed -e "s#@DIR@#$WORK#g" -e "s/@FAKE_PORT@/$FAKE_PORT/g" -e "s/@PROXY_PORT@/${PROXY_PORT:-}/g" \
        -e "s/@KEY_SHA@/$KEY_SHA/g" "$1" > "$2"
}
gateway_config() { # OUT
    local here
    here=$(dirname "${BASH_SOURCE[0]}")
    if [[ $GOVERNED == 1 ]]; then
        render "$here/gateway-governed.yaml.in" "$1"
    else
        render "$here/gateway.yaml.in" "$1"
    fi
}

# install_missing COMMAND PACKAGE [COMMAND PACKAGE ...]: apt-get installs the packages
# whose command is missing, without letting nginx's postinst start the system service.
install_missing() {
    local missing=() made_policy=0
    while (($# >= 2)); do
        command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]] || missing+=("$2")
        shift 2
    done
    export PATH="$PATH:/usr/sbin"
    ((${#missing[@]})) || return 0
    echo "installing ${missing[*]} with apt-get" >&2
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if ((made_policy)); then rm -f /usr/sbin/policy-rc.d; fi
}
