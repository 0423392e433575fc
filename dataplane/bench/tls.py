"""TLS and HTTP/2 to the upstream, against nginx proxying to the same TLS upstream: what
TLS costs per call when connections are reused, and per new connection.

    bash dataplane/bench/tls.sh          # wraps this: picks the binary, installs tools

Everything on 127.0.0.1. A test CA and an ECDSA P-256 server certificate (openssl) for
one nginx fake upstream with four doors: plain HTTP, HTTPS/1.1, HTTPS with HTTP/2 by
ALPN, and HTTPS/1.1 that closes every connection after one answer (so every call pays a
handshake, with session resumption as both proxies offer it). nginx as a reverse proxy
and the gateway each reach the doors; the proxy under test has core 1, wrk and the fake
core 0. Auth off and the audit log to /dev/null, so the rows differ by the upstream
only. Results to stdout and to RESULTS-tls.md; about 3 minutes.
"""
import os
import subprocess
import tempfile
import threading
import time

from benchlib import (PIN_LOAD, PIN_PROXY, REPO, Procs, all_cpu, busy_share, core_busy, cpu_of,
                      logger, make_test_pki, other_cpu, repo_rev, wait_port, write_results, wrk_all)

log = logger("tls")
BASE = int(os.environ.get("BENCH_PORT_BASE", "18400"))
DOORS = {"plain": BASE + 1, "tls": BASE + 2, "h2": BASE + 3, "close": BASE + 4}
NGINX_PORTS = {"plain": BASE + 11, "tls": BASE + 12, "close": BASE + 14}
GW_PORT, ADMIN_PORT = BASE + 20, BASE + 21
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
CONNS = int(os.environ.get("BENCH_CONNS", "64"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def common_http(work, name):
    return f"""worker_processes 1;
daemon off;
pid {work}/{name}.pid;
error_log {work}/{name}-error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {work}/tmp/{name}-body;
    proxy_temp_path {work}/tmp/{name}-proxy;
    fastcgi_temp_path {work}/tmp/{name}-fastcgi;
    uwsgi_temp_path {work}/tmp/{name}-uwsgi;
    scgi_temp_path {work}/tmp/{name}-scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    tcp_nodelay on;
"""


def fake_conf(work):
    tls = f"""
        ssl_certificate {work}/server.pem;
        ssl_certificate_key {work}/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:bench:1m;"""
    location = f"""
        root {work}/www;
        location = /v1/chat/completions {{ rewrite ^ /static/chat.json last; }}
        location /static/ {{ error_page 405 =200 $uri; add_header Cache-Control no-cache; }}"""
    return common_http(work, "fake") + f"""    types {{ application/json json; }}
    sendfile on;
    open_file_cache max=16 inactive=600s;
    server {{ listen 127.0.0.1:{DOORS['plain']} backlog=4096; {location} }}
    server {{ listen 127.0.0.1:{DOORS['tls']} ssl backlog=4096; {tls} {location} }}
    server {{ listen 127.0.0.1:{DOORS['h2']} ssl http2 backlog=4096; {tls} {location} }}
    log_format handshake "$ssl_protocol $ssl_session_reused";
    server {{ listen 127.0.0.1:{DOORS['close']} ssl backlog=4096; keepalive_timeout 0;
              access_log {work}/handshakes.log handshake; {tls} {location} }}
}}
"""


def proxy_conf(work):
    servers = ""
    for door, port in NGINX_PORTS.items():
        scheme = "http" if door == "plain" else "https"
        servers += f"""
    upstream {door} {{ server 127.0.0.1:{DOORS[door]}; keepalive 256; keepalive_requests 10000000; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass {scheme}://{door};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_ssl_trusted_certificate {work}/ca.pem;
            proxy_ssl_verify on;
            proxy_ssl_name 127.0.0.1;
            proxy_ssl_session_reuse on;
            proxy_ssl_protocols TLSv1.2 TLSv1.3;  # 1.22 offers up to 1.2 unless told
        }}
    }}"""
    return common_http(work, "proxy") + servers + "\n}\n"


def gateway_conf(work):
    providers = "".join(f"""
  {door}:
    type: openai-compatible
    base_url: "{'http' if door == 'plain' else 'https'}://127.0.0.1:{port}/v1"
    {'' if door == 'plain' else f'ca_file: "{work}/ca.pem"'}""" for door, port in DOORS.items())
    routes = "".join(f"\n  - {{ models: [\"bench-{door}\"], provider: {door} }}" for door in DOORS)
    return f"""providers:{providers}
routes:{routes}
auth:
  mode: none
rate_limits:
  default: {{ requests_per_minute: 1000000000, tokens_per_minute: 1000000000000 }}
audit:
  sink: stdout
"""


def upstream_connections(port):
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"],
                         capture_output=True, text=True).stdout
    return len([line for line in out.splitlines() if line.strip()])


def handshake_lines(work):
    try:
        with open(os.path.join(work, "handshakes.log")) as f:
            return f.readlines()
    except FileNotFoundError:
        return []


def handshake_summary(lines):
    """What the closing door saw: TLS version and how many sessions were resumed."""
    if not lines:
        return None
    versions = sorted({line.split()[0] for line in lines if line.strip()})
    resumed = sum(1 for line in lines if line.split()[1:2] == ["r"])
    return f"{'/'.join(versions)}, {resumed / len(lines):.0%} resumed"


def run_path(work, label, url, body, proxy_pid, door):
    rounds = []
    for r in range(ROUNDS):
        cpu0, busy0, others0 = cpu_of(proxy_pid), core_busy(), all_cpu()
        seen = []
        sampler = threading.Timer(SECONDS / 2, lambda: seen.append(upstream_connections(DOORS[door])))
        sampler.start()
        t0 = time.time()
        handshakes_before = handshake_lines(work)
        res = wrk_all(body, "", [url], SECONDS, CONNS)[0]
        wall = time.time() - t0
        sampler.join()
        cpu1, busy1, others1 = cpu_of(proxy_pid), core_busy(), all_cpu()
        rounds.append({
            "rps": res["requests"] / SECONDS, "p50_ms": res["p50_us"] / 1000, "p99_ms": res["p99_us"] / 1000,
            "non2xx": res["status_errors"], "errors": res["errors"],
            "cpu_us_per_call": (cpu1 - cpu0) * 1e6 / max(1, res["requests"]),
            "core0": busy_share(busy0, busy1, "cpu0") if "cpu0" in busy0 else None,
            "core1": busy_share(busy0, busy1, "cpu1") if "cpu1" in busy0 else None,
            "upstream_conns": seen[0] if seen else None,
            "other_cpu": other_cpu(others0, others1, wall),
            "handshakes": handshake_summary(handshake_lines(work)[len(handshakes_before):]),
        })
        log(f"{label}: {rounds[-1]['rps']:,.0f} req/s, {rounds[-1]['cpu_us_per_call']:.1f} µs CPU a call, "
            f"{rounds[-1]['upstream_conns']} upstream connections")
    quiet = [x for x in rounds if x["other_cpu"] <= 0.10] or rounds
    median = sorted(quiet, key=lambda x: x["rps"])[len(quiet) // 2]
    return {"label": label, "median": median, "rounds": rounds}


def main():
    binary = os.environ["AI_GATEWAY_BIN_RESOLVED"]
    work = tempfile.mkdtemp(prefix="ai-gateway-tls.")
    os.chmod(work, 0o755)
    os.makedirs(os.path.join(work, "www", "static"))
    os.makedirs(os.path.join(work, "tmp"))
    with open(os.path.join(REPO, "dataplane/tests/fixtures/upstream/openai/chat_text.json"), "rb") as a, \
            open(os.path.join(work, "www", "static", "chat.json"), "wb") as b:
        b.write(a.read())
    make_test_pki(work)
    for name, text in (("fake.conf", fake_conf(work)), ("proxy.conf", proxy_conf(work)),
                       ("gateway.yaml", gateway_conf(work))):
        with open(os.path.join(work, name), "w") as f:
            f.write(text)
    bodies = {}
    for door in DOORS:
        bodies[door] = os.path.join(work, f"body-{door}.json")
        with open(bodies[door], "w") as f:
            f.write('{"model":"bench-%s","messages":[{"role":"user","content":"Say hi in one short sentence."}]}' % door)
    procs = Procs(work)
    rows = []
    try:
        fake = procs.start(PIN_LOAD + ["nginx", "-c", f"{work}/fake.conf", "-e", f"{work}/fake-error.log"], "fake")
        proxy = procs.start(PIN_PROXY + ["nginx", "-c", f"{work}/proxy.conf", "-e", f"{work}/proxy-error.log"], "proxy")
        gateway = procs.start(PIN_PROXY + [binary, "--config", f"{work}/gateway.yaml", "--listen",
                                           f"127.0.0.1:{GW_PORT}", "--admin-listen", f"127.0.0.1:{ADMIN_PORT}",
                                           "--data-dir", f"{work}/data", "--log-level", "warn"],
                              "gateway", stdout=subprocess.DEVNULL)
        for port, p in [(DOORS["close"], fake), (NGINX_PORTS["close"], proxy), (ADMIN_PORT, gateway)]:
            wait_port(port, p)
        time.sleep(0.3)
        with open(f"{work}/proxy.pid") as f:
            nginx_worker = int(subprocess.run(["pgrep", "-P", f.read().strip()], capture_output=True,
                                              text=True).stdout.split()[0])
        paths = [(f"nginx → {door}", f"http://127.0.0.1:{port}/v1/chat/completions", bodies[door], nginx_worker, door)
                 for door, port in NGINX_PORTS.items()]
        paths += [(f"ai-gateway → {door}", f"http://127.0.0.1:{GW_PORT}/v1/chat/completions", bodies[door],
                   gateway.pid, door) for door in DOORS]
        for label, url, body, pid, door in paths:
            check = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary",
                                    f"@{body}", "-H", "Content-Type: application/json", url],
                                   capture_output=True, text=True).stdout
            if check != "200":
                raise RuntimeError(f"{label}: sanity call answered {check}; logs in {work}")
            wrk_all(body, "", [url], 1, CONNS)  # warm-up: connections, sessions
            rows.append(run_path(work, label, url, body, pid, door))
    finally:
        procs.stop_all()
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "binary": binary,
              "build": os.environ.get("AI_GATEWAY_BIN_BUILD", "release build"),
              "rev": repo_rev(),
              "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
              "rows": rows}
    write_results(work, report, render, "RESULTS-tls.md", log)


def render(rep):
    w = ["# TLS and HTTP/2 to the upstream\n",
         f"- date: {rep['date']}",
         f"- gateway: `{rep['binary']}` ({rep['build']}, repo at {rep['rev']}); {rep['nginx']}",
         "- rerun: `bash dataplane/bench/tls.sh` (about 3 minutes)",
         "- the fake upstream (nginx, core 0) serves the OpenAI chat fixture on four doors: plain HTTP; HTTPS/1.1; "
         "HTTPS with HTTP/2 by ALPN; HTTPS/1.1 closing every connection after one answer, so each call pays a "
         "TLS handshake (ECDSA P-256; *handshakes* says which TLS version and how many were resumed). nginx "
         "(proxy_ssl_verify, TLS 1.2 and 1.3 offered, session reuse, keepalive 256, no HTTP/2 upstream) and the gateway (`ca_file`, auth off, audit to /dev/null) each run alone on core 1.\n",
         f"wrk, {CONNS} keep-alive connections, {SECONDS} s after a 1 s warm-up, {ROUNDS} rounds; the median round. "
         "*CPU/call* = the proxy's own CPU time per call; *upstream conns* = established connections to the door "
         "midway through the run; *other CPU* above 10 % of a core marks a round `*`.\n",
         "| path | req/s | req/s by round | CPU/call µs | p50 ms | p99 ms | upstream conns | handshakes | non-2xx | core 0 busy | core 1 busy | other CPU |",
         "|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    by = {}
    for row in rep["rows"]:
        m = row["median"]
        by[row["label"]] = m
        rounds = " / ".join(f"{r['rps']:,.0f}{'*' if r['other_cpu'] > 0.10 else ''}" for r in row["rounds"])
        w.append(f"| {row['label']} | {m['rps']:,.0f} | {rounds} | {m['cpu_us_per_call']:.1f} | {m['p50_ms']:.2f} | "
                 f"{m['p99_ms']:.2f} | {m['upstream_conns']} | {m['handshakes'] or '—'} | {m['non2xx'] + m['errors']} | {m['core0']:.0%} | "
                 f"{m['core1']:.0%} | {m['other_cpu']:.0%} |")
    w.append("\n## Reading\n")
    for who in ("nginx", "ai-gateway"):
        plain, tls, close = (by.get(f"{who} → {d}") for d in ("plain", "tls", "close"))
        if plain and tls and close:
            w.append(f"- {who}: TLS on a reused connection costs {tls['cpu_us_per_call'] - plain['cpu_us_per_call']:+.1f} µs "
                     f"of CPU a call; a new connection (handshake, resumed session) {close['cpu_us_per_call'] - tls['cpu_us_per_call']:+.1f} µs more; "
                     f"req/s {tls['rps'] / plain['rps']:.0%} of plain with reuse, {close['rps'] / plain['rps']:.0%} with a handshake a call.")
    h2, tls = by.get("ai-gateway → h2"), by.get("ai-gateway → tls")
    if h2 and tls:
        w.append(f"- ai-gateway over HTTP/2: {h2['upstream_conns']} upstream connection(s) carried {CONNS} concurrent callers "
                 f"(HTTP/1.1: {tls['upstream_conns']}); {h2['cpu_us_per_call'] - tls['cpu_us_per_call']:+.1f} µs a call against HTTPS/1.1.")
    return "\n".join(w) + "\n"


if __name__ == "__main__":
    main()
