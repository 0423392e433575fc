#!/usr/bin/env python3
"""Training load for the profile-guided release build (dataplane/pgo/build.sh).

Runs an instrumented `ai-gateway` in front of the recording fake upstream from the
tests (Anthropic Messages and OpenAI chat, JSON and SSE) and sends it the calls the
gateway serves most: OpenAI chat to an OpenAI-compatible model and to Claude, Claude
Code's Messages calls passed through to Anthropic and translated to an OpenAI-style
model, and OpenAI's native surface, streamed and not. Paths the load never takes are
laid out as cold code, so the calls users send most are in the mix. Stdlib only;
everything on 127.0.0.1; stops by itself after --calls calls of each kind, and gives up
after DEADLINE_SECONDS whatever happens.

    python3 train.py --gateway PATH [--calls 300]
"""

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "..", "tests", "clients", "fake_anthropic_capture.py")
WORKERS = 4
DEADLINE_SECONDS = 600

CONFIG = """
providers:
  anthropic: {{ type: anthropic, base_url: "http://127.0.0.1:{port}", api_key: train-key }}
  compat: {{ type: openai-compatible, base_url: "http://127.0.0.1:{port}/v1", api_key: train-key }}
routes:
  - {{ models: ["claude-*"], provider: anthropic }}
  - {{ models: ["gpt-*"], provider: compat }}
auth: {{ mode: none }}
rate_limits:
  default: {{ requests_per_minute: 1000000000, tokens_per_minute: 1000000000000 }}
audit: {{ sink: stdout }}
"""

HI = [{"role": "user", "content": "Say hi in one short sentence."}]
TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def kinds():
    """(path, headers, body) of each kind of call in the mix."""
    anthropic = {"anthropic-version": "2023-06-01", "anthropic-beta": "interleaved-thinking-2025-05-14"}
    calls = []
    for stream in (False, True):
        calls += [
            ("/v1/chat/completions", {}, {"model": "gpt-4o", "stream": stream, "messages": HI}),
            ("/v1/chat/completions", {}, {"model": "claude-sonnet-4-5", "stream": stream, "messages": HI}),
            ("/v1/claude/v1/messages?beta=true", anthropic,
             {"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": stream, "messages": HI, "tools": TOOLS}),
            ("/v1/claude/v1/messages", anthropic,
             {"model": "gpt-4o", "max_tokens": 256, "stream": stream, "messages": HI, "tools": TOOLS}),
            ("/v1/openai/v1/chat/completions", {}, {"model": "gpt-4o", "stream": stream, "messages": HI}),
        ]
    return calls


def wait_for(predicate, what, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    sys.exit("train.py: %s did not happen within %d s" % (what, seconds))


def drive(api_port, calls, outcome):
    """One worker's calls; counts the ones answered 200 in outcome["ok"]."""
    conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=30)
    try:
        for i in range(calls):
            requests = [("POST", path, headers, body) for path, headers, body in kinds()]
            if i % 50 == 0:
                requests += [("GET", "/v1/models", {}, None), ("GET", "/health", {}, None)]
            for method, path, headers, body in requests:
                conn.request(method, path, body=body and json.dumps(body),
                             headers={"content-type": "application/json", **headers})
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    outcome["failures"].append("%s %s: %d" % (method, path, resp.status))
                    return
                if method == "POST":
                    with outcome["lock"]:
                        outcome["ok"] += 1
    except Exception as e:  # a worker that dies must fail the run, not shrink the profile
        outcome["failures"].append(repr(e))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gateway", required=True, help="the instrumented ai-gateway binary")
    ap.add_argument("--calls", type=int, default=300, help="calls of each kind per worker")
    args = ap.parse_args()
    # SIGALRM raises in the main thread; the finally below still stops both processes.
    signal.signal(signal.SIGALRM, lambda *_: sys.exit("train.py: gave up after %d s" % DEADLINE_SECONDS))
    signal.alarm(DEADLINE_SECONDS)

    with tempfile.TemporaryDirectory(prefix="ai-gateway-pgo-") as work:
        port_file = os.path.join(work, "port")
        fake = subprocess.Popen([sys.executable, FAKE, "--port-file", port_file],
                                stdout=subprocess.DEVNULL)
        gateway = None
        try:
            port = wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(),
                            "the fake upstream starting")
            config = os.path.join(work, "gateway.yaml")
            with open(config, "w") as f:
                f.write(CONFIG.format(port=port))
            # A bare environment: AI_GATEWAY_* settings or LLVM_PROFILE_FILE from the
            # caller's shell would change what runs or where the profile goes.
            gateway = subprocess.Popen(
                [args.gateway, "--config", config, "--listen", "127.0.0.1:0",
                 "--admin-listen", "127.0.0.1:0", "--log-level", "info"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                env={"PATH": os.environ.get("PATH", "")})
            api_port = None
            for line in gateway.stderr:
                if "ai-gateway listening" in line:
                    addr = next(w for w in line.split() if w.startswith("api="))
                    api_port = int(addr.rsplit(":", 1)[1])
                    break
            if api_port is None:
                sys.exit("train.py: the gateway exited before it listened")
            # Keep reading its log so a full pipe never blocks it.
            threading.Thread(target=lambda: [None for _ in gateway.stderr], daemon=True).start()

            started = time.time()
            outcome = {"ok": 0, "failures": [], "lock": threading.Lock()}
            workers = [threading.Thread(target=drive, args=(api_port, args.calls, outcome))
                       for _ in range(WORKERS)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            if outcome["failures"]:
                sys.exit("train.py: calls failed, the profile would train error paths: %s"
                         % "; ".join(outcome["failures"][:4]))
            print("train.py: %d calls in %.1f s" % (outcome["ok"], time.time() - started))
            # The profile is written when the process exits cleanly.
            gateway.send_signal(signal.SIGTERM)
            if gateway.wait(timeout=60) != 0:
                sys.exit("train.py: the gateway did not exit cleanly")
        finally:
            if gateway and gateway.poll() is None:
                gateway.kill()
            fake.terminate()
            fake.wait()


if __name__ == "__main__":
    main()
