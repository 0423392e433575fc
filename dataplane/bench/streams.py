#!/usr/bin/env python3
"""Memory per open stream: N streamed calls held open at once through the gateway, each
kept alive by a slow loopback upstream that sends one Anthropic event a second, and the
gateway's RSS before, with all N open, and after they close; /health's latency while
they are open. Then M idle connections and their RSS: M never used, then M kept alive
after one call each (`GET /v1/models`).

usage: streams.py GATEWAY_BIN STREAMS [IDLE] [--door=chat|claude|both] [--profile]
                  [--upstream=h2|nginx [--max-streams=N]]

--upstream=h2: the slow upstream speaks HTTP/2 over TLS (a test CA made with openssl,
given to the gateway as `ca_file`; Python's `h2` package), as real providers do, so the
streams share upstream connections; it advertises N concurrent streams a connection
[100000]. Without it, HTTP/1.1: one upstream connection a stream.

--upstream=nginx: the same over HTTPS and HTTP/2, served by nginx (installed with
apt-get when missing) with `limit_rate`, and the streams opened at an even pace
(OPEN_PACE a second) rather than in batches. The Python upstream and batched opens
load this script's core fully at 10,000 streams, and its event loop then writes the
events in bursts of hundreds, which a probe waits behind; nginx's per-stream timers,
started at an even pace, spread the events over the second as independent agents'
streams do.

--profile: GATEWAY_BIN is a `--features dhat-heap` build; with the streams open it is
stopped (SIGTERM) so dhat writes its heap profile, and the allocation sites holding the
most bytes at the heap's peak are printed, by the frames of the gateway's own code.

STREAMS_KEEP=1 keeps the run directory (configs, the upstream's log) and names it.

Everything runs on loopback and stops by itself. The gateway needs a descriptor for
each caller connection, stream or idle, and over HTTP/1.1 one more a stream for its
upstream (over HTTP/2 streams share a few); this machine allows a process 20,000, so
STREAMS stays under about 9,500 over HTTP/1.1 and IDLE under about 18,600 (the gateway
keeps a sixteenth of its descriptors back from callers). Where IDLE is
more than the machine allows, that part says SKIPPED and why. Idle connections come from
127.0.0.2, .3, ..., 20,000 from each, so that 50,000 do not run out of ephemeral ports.
Prints one JSON object.
"""
import asyncio
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import PIN_PROXY, cpu_of, wait_port

EVENT_EVERY = 1.0
BATCH = 250
# Streams opened a second with `--upstream=nginx`.
OPEN_PACE = 400


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlowAnthropic:
    """Answers every Messages call with a stream that never ends on its own: one
    content_block_delta a second until the gateway hangs up."""

    def __init__(self):
        self.open = 0

    async def handle(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )

            def chunk(event, data):
                payload = f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
                return b"%x\r\n%s\r\n" % (len(payload), payload)

            writer.write(chunk("message_start", {"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [], "stop_reason": None, "usage": {"input_tokens": 12, "output_tokens": 1}}}))
            writer.write(chunk("content_block_start", {"type": "content_block_start", "index": 0,
                                                       "content_block": {"type": "text", "text": ""}}))
            self.open += 1
            while True:
                writer.write(chunk("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                           "delta": {"type": "text_delta", "text": "tick "}}))
                await writer.drain()
                await asyncio.sleep(EVENT_EVERY)
        except (ConnectionError, asyncio.IncompleteReadError, AttributeError):
            pass
        finally:
            writer.close()


def anthropic_events():
    """The slow stream's opening events and its repeated one, as SSE bytes."""
    def event(name, data):
        return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    opening = event("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [], "stop_reason": None, "usage": {"input_tokens": 12, "output_tokens": 1}}}) + \
        event("content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}})
    tick = event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "text_delta", "text": "tick "}})
    return opening, tick


class SlowAnthropicH2:
    """The same slow stream over TLS with HTTP/2 by ALPN, as real providers serve: every
    call a stream on one shared connection. Advertises MAX_STREAMS concurrent streams
    (real front ends say 100 to 256; `--max-streams`)."""

    def __init__(self, max_streams):
        self.open = 0
        self.max_streams = max_streams

    async def handle(self, reader, writer):
        import h2.config
        import h2.connection
        import h2.events
        import h2.settings

        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        conn.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams})
        opening, tick = anthropic_events()
        tickers = {}

        async def ticker(sid):
            conn.send_headers(sid, [(":status", "200"), ("content-type", "text/event-stream")])
            conn.send_data(sid, opening)
            self.open += 1
            try:
                while True:
                    conn.send_data(sid, tick)
                    writer.write(conn.data_to_send())
                    await writer.drain()
                    await asyncio.sleep(EVENT_EVERY)
            except Exception:
                pass
            finally:
                self.open -= 1

        try:
            writer.write(conn.data_to_send())
            while data := await reader.read(65536):
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.DataReceived):
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        tickers[ev.stream_id] = asyncio.create_task(ticker(ev.stream_id))
                    elif isinstance(ev, h2.events.StreamReset):
                        task = tickers.pop(ev.stream_id, None)
                        if task:
                            task.cancel()
                writer.write(conn.data_to_send())
        except (ConnectionError, OSError):
            pass
        finally:
            for task in tickers.values():
                task.cancel()
            writer.close()


def upstream_tls(work):
    """TLS for the HTTP/2 upstream: its server context and the CA file the gateway trusts."""
    import ssl
    from benchlib import make_test_pki

    make_test_pki(work)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.path.join(work, "server.pem"), os.path.join(work, "server.key"))
    context.set_alpn_protocols(["h2"])
    return context, os.path.join(work, "ca.pem")


async def hold_stream(port, path, body, opened, stop):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
        f"anthropic-version: 2023-06-01\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body
    )
    await writer.drain()
    seen = b""
    while b"content_block_delta" not in seen and b"chat.completion.chunk" not in seen:
        data = await reader.read(4096)
        if not data:
            raise ConnectionError(f"closed before the first event: {seen[:300]!r}")
        seen = (seen + data)[-8192:]
    opened.append(1)
    try:
        while not stop.is_set():
            data = await asyncio.wait_for(reader.read(4096), timeout=5)
            if not data:
                break
    except asyncio.TimeoutError:
        pass
    writer.close()


def upstream_connections(port):
    """Connections the gateway holds to the upstream (those with the port as their peer)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"],
                         capture_output=True, text=True).stdout
    return len([line for line in out.splitlines() if line.strip()])


# A long-lived prober, as a kubelet is: each probe on a new connection, timed from
# connect to the end of the answer (`connection: close`, as the kubelet sends).
PROBER = r"""
import json, socket, sys, time
port, n, every = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
head = b"GET /health HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n"
times, failed = [], 0
for _ in range(n):
    t0 = time.perf_counter()
    answer = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(head)
            while chunk := s.recv(4096):
                answer += chunk
    except OSError:
        pass
    if answer.startswith(b"HTTP/1.1 200"):
        times.append((time.perf_counter() - t0) * 1000)
    else:
        failed += 1
    time.sleep(every)
print(json.dumps({"times": times, "failed": failed}))
"""


async def health_ms(port, n=20, prefix=()):
    """`/health`'s latency as a prober of its own times it: this script's event loop,
    busy relaying the held streams, would add its own delays, and a process started for
    each probe (curl) spends milliseconds of the probed core starting. `prefix` puts the
    prober beside the gateway rather than on this script's busy core."""
    prober = await asyncio.create_subprocess_exec(
        *prefix, sys.executable, "-c", PROBER, str(port), str(n), "0.05", stdout=asyncio.subprocess.PIPE)
    out, _ = await prober.communicate()
    probed = json.loads(out)
    samples = sorted(probed["times"]) or [float("nan")]
    return {"samples": n, "failed": probed["failed"], "p50": round(samples[len(samples) // 2], 2),
            "p99": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 2),
            "max": round(samples[-1], 2)}


def heap_peak_sites(path, top=25):
    """The allocation sites live at dhat's global peak, biggest first, each named by its
    first frames inside this project (or hyper/tokio when none)."""
    with open(path) as f:
        profile = json.load(f)
    frames = profile["ftbl"]
    sites = []
    for pp in profile["pps"]:
        held = pp.get("gb", 0)
        if not held:
            continue
        names = [frames[i] for i in pp["fs"]]
        ours = [n for n in names if "ai_gateway" in n][:3]
        shown = ours or [n for n in names if "hyper" in n or "tokio" in n][:2] or names[:2]
        sites.append((held, pp.get("gbk", 0), [re.sub(r"\s*\(.*?\)$", "", n)[:160] for n in shown]))
    sites.sort(key=lambda s: -s[0])
    total = sum(s[0] for s in sites)
    return {"peak_bytes": total, "sites": [
        {"bytes": b, "blocks": k, "frames": fr} for b, k, fr in sites[:top]]}


# Connections to one address and port from one source address share its ephemeral
# ports (net.ipv4.ip_local_port_range: 28,232 by default), so tens of thousands of them
# come from several loopback addresses, this many from each.
PER_SOURCE = 20000


def source_address(i):
    return f"127.0.0.{2 + i // PER_SOURCE}"


def connect_from(source, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # The port is picked at connect, per destination, rather than at bind.
    s.setsockopt(socket.SOL_IP, getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24), 1)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def descriptors_short(needed):
    """Why `needed` descriptors cannot be held here, or None when they can."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < needed:
        return (f"needs {needed} descriptors in this process and in the gateway; this "
                f"machine allows a process {hard} (ulimit -Hn), which only a privileged "
                "process can raise")
    return None


async def idle_connections(pid, port, n, path):
    """RSS of `n` connections held open with nothing in progress: never used (`path`
    None), or kept alive after one call to `path` each, as clients' pooled connections
    are between calls."""
    base = rss_kib(pid)
    sockets = []
    for i in range(n):
        s = connect_from(source_address(i), port)
        sockets.append(s)
        if path:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: gateway\r\nAccept: */*\r\n\r\n".encode())
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError(f"{path}: connection closed before the answer")
                answer += chunk
    report = {}
    # Right after, and once the gateway has parked them (5-10 s into the quiet: a sixth
    # of its 30 s idle limit, found by a sweep that runs as often) and jemalloc has
    # given the freed pages back (its decay, about 10 s more); before the 30 s close.
    for wait, name in ((2, "after_2s"), (23, "after_25s")):
        await asyncio.sleep(wait)
        held = rss_kib(pid)
        report[name] = {"rss_kib": held, "kib_per_connection": round((held - base) / n, 2)}
    for s in sockets:
        s.close()
    await asyncio.sleep(2)
    return report


def slow_nginx(work, port, max_streams):
    """Starts the nginx upstream of `--upstream=nginx` (on this script's core, which it
    inherits); the process, and the CA file the gateway trusts."""
    from benchlib import make_test_pki

    make_test_pki(work)
    os.makedirs(os.path.join(work, "www", "static"))
    os.makedirs(os.path.join(work, "tmp"))
    # nginx's workers run as nobody: the run directory must be readable to them.
    os.chmod(work, 0o755)
    opening, tick = anthropic_events()
    an_hour = int(3600 / EVENT_EVERY)
    with open(os.path.join(work, "www", "static", "slow.sse"), "wb") as f:
        f.write(opening + tick * an_hour)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "slow-upstream.nginx.conf.in")) as f:
        conf = f.read()
    for key, value in {"DIR": work, "PORT": port, "STREAMS": max_streams,
                       "AFTER": len(opening) + len(tick), "RATE": len(tick)}.items():
        conf = conf.replace(f"@{key}@", str(value))
    conf_path = os.path.join(work, "slow.conf")
    with open(conf_path, "w") as f:
        f.write(conf)
    nginx = subprocess.Popen(["nginx", "-c", conf_path, "-e", os.path.join(work, "slow-error.log")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, nginx)
    return nginx, os.path.join(work, "ca.pem")


async def run(bin_path, streams, idle, doors, profile=False, h2_streams=0, nginx=False):
    up_port = free_port()
    work = tempfile.mkdtemp()
    # As the other benchmarks split a machine: the gateway alone on core 1 (with the
    # health prober), this script's busy event loop and an nginx upstream on core 0.
    on_gateway_core = PIN_PROXY
    if on_gateway_core:
        os.sched_setaffinity(0, {0})
    if nginx:
        server, ca = slow_nginx(work, up_port, h2_streams)
        base_url = f"https://127.0.0.1:{up_port}"
        trust = f', ca_file: "{ca}"'
    elif h2_streams:
        upstream = SlowAnthropicH2(h2_streams)
        tls, ca = upstream_tls(work)
        server = await asyncio.start_server(upstream.handle, "127.0.0.1", up_port, backlog=4096, ssl=tls)
        base_url = f"https://127.0.0.1:{up_port}"
        trust = f', ca_file: "{ca}"'
    else:
        upstream = SlowAnthropic()
        server = await asyncio.start_server(upstream.handle, "127.0.0.1", up_port, backlog=4096)
        base_url, trust = f"http://127.0.0.1:{up_port}", ""
    config = os.path.join(work, "gateway.yaml")
    with open(config, "w") as f:
        f.write(
            f'providers:\n  anthropic: {{ type: anthropic, base_url: "{base_url}", api_key: sk{trust} }}\n'
            'routes:\n  - { models: ["claude-*"], provider: anthropic }\n'
            "rate_limits:\n  store: { kind: memory }\naudit: { sink: none }\n"
        )
    gw_port = free_port()
    gw = subprocess.Popen(
        on_gateway_core + [bin_path, "--config", config, "--listen", f"127.0.0.1:{gw_port}",
         "--admin-listen", "127.0.0.1:0", "--data-dir", os.path.join(work, "data"),
         "--drain-seconds", "1"],
        cwd=work,
        env={"PATH": os.environ.get("PATH", ""), "AI_GATEWAY_LOG_LEVEL": "error"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(gw_port, gw)
        chat = json.dumps({"model": "claude-sonnet-4-5", "stream": True, "max_tokens": 64,
                           "messages": [{"role": "user", "content": "count"}]}).encode()
        paths = {"chat": ("/v1/chat/completions", chat), "claude": ("/v1/claude/v1/messages", chat)}
        chosen = ["chat", "claude"] if doors == "both" else [doors]
        # Warm the allocator and the connection code paths before the baseline.
        warm_stop, warm_open = asyncio.Event(), []
        warm = [asyncio.create_task(hold_stream(gw_port, *paths[chosen[i % len(chosen)]], warm_open, warm_stop))
                for i in range(50)]
        while len(warm_open) < 50:
            await asyncio.sleep(0.05)
        warm_stop.set()
        await asyncio.gather(*warm, return_exceptions=True)
        await asyncio.sleep(2)
        before = rss_kib(gw.pid)
        stop, opened = asyncio.Event(), []
        tasks = []
        t0 = time.perf_counter()
        for i in range(streams):
            path, body = paths[chosen[i % len(chosen)]]
            tasks.append(asyncio.create_task(hold_stream(gw_port, path, body, opened, stop)))
            if nginx:
                # Ten at a time: sleeps of under a few milliseconds are not kept.
                if i % 10 == 9:
                    await asyncio.sleep(10 / OPEN_PACE)
            elif i % BATCH == BATCH - 1:
                while len(opened) < i + 1 - BATCH // 2:
                    await asyncio.sleep(0.02)
        while len(opened) < streams and time.perf_counter() - t0 < 120:
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)
        held = rss_kib(gw.pid)
        held_upstream = upstream_connections(up_port)
        cpu_before, window_start = cpu_of(gw.pid), time.perf_counter()
        health = await health_ms(gw_port, n=200, prefix=on_gateway_core)
        busy = (cpu_of(gw.pid) - cpu_before) / (time.perf_counter() - window_start)
        if profile:
            gw.terminate()
            for _ in range(600):
                if gw.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            return {"streams": streams, "open": len(opened),
                    "heap": heap_peak_sites(os.path.join(work, "dhat-heap.json"))}
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        failures = [repr(r) for r in results if isinstance(r, Exception)]
        await asyncio.sleep(3)
        after = rss_kib(gw.pid)
        report = {
            "streams": streams, "open": len(opened), "doors": chosen,
            "rss_kib": {"before": before, "held": held, "after": after},
            "kib_per_stream": round((held - before) / max(1, len(opened)), 1),
            "health_ms_while_held": health, "failures": len(failures),
            # Over the probes' window, the streams' events (one a second each) and the
            # probes being all the gateway does.
            "gateway_cpu_while_held": {"share_of_a_core": round(busy, 3),
                                       "us_per_event": round(busy * 1e6 / max(1, len(opened)) * EVENT_EVERY, 1)},
            "upstream": (f"https, HTTP/2, {h2_streams} streams a connection" if h2_streams else "http/1.1")
            + (", nginx, streams opened at an even pace" if nginx else ""),
            "upstream_connections": held_upstream,
            "first_failure": failures[0] if failures else None,
            "gateway_cores": f"core {on_gateway_core[2]}, shared only with the health prober" if on_gateway_core else "unpinned",
        }
        # The gateway keeps a sixteenth of its descriptors back from callers.
        short = descriptors_short(idle * 16 // 15 + 100) if idle else None
        if short:
            print(f"SKIPPED: {idle} idle connections: {short}", file=sys.stderr)
            report["idle"] = {"connections": idle, "skipped": short}
        elif idle:
            report["idle"] = {
                "connections": idle,
                "never_used": await idle_connections(gw.pid, gw_port, idle, None),
                "after_one_call": await idle_connections(gw.pid, gw_port, idle, "/v1/models"),
            }
        return report
    finally:
        gw.kill()
        gw.wait()
        if nginx:
            server.terminate()
            server.wait()
        else:
            server.close()
        if os.environ.get("STREAMS_KEEP"):
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    profile = "--profile" in sys.argv
    door = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--door=")), "both")
    bin_path, streams = args[0], int(args[1])
    idle = int(args[2]) if len(args) > 2 else 0
    h2_streams = 0
    nginx = "--upstream=nginx" in sys.argv
    if nginx and not shutil.which("nginx"):
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx"], check=True)
    elif "--upstream=h2" in sys.argv:
        try:
            import h2  # noqa: F401
        except ImportError:
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "h2"], check=True)
    if nginx or "--upstream=h2" in sys.argv:
        h2_streams = int(next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--max-streams=")),
                              "256" if nginx else "100000"))
    print(json.dumps(asyncio.run(run(bin_path, streams, idle, door, profile, h2_streams, nginx))))


if __name__ == "__main__":
    main()
