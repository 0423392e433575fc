"""Many data-plane replicas on one Redis, the production shape: throughput per replica,
exactness of shared limits, Redis's cost per call, a slow Redis and a Redis restart.

    bash dataplane/bench/replicas.sh          # wraps this: picks the binary, installs tools

Everything runs on 127.0.0.1: one redis-server, one nginx serving the OpenAI fixtures
as a fake upstream, and 1, 2 or 4 gateway processes with keys, limits in Redis and a
file audit log. The gateways share core 1; the load (wrk, or this script's own client),
the fake and Redis share core 0. Results go to stdout and to RESULTS-replicas.md.
About 4 minutes, plus up to a minute waiting for a fresh rate-limit minute.

    replicas.py delay-proxy LISTEN_PORT TARGET_PORT DELAY_MS   # used by the run itself
"""
import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import (HERE, PIN_LOAD, PIN_PROXY as PIN_GW, REPO, Procs, all_cpu, busy_share,
                      core_busy, cpu_of, logger, other_cpu, repo_rev, wait_port, write_results,
                      wrk_all as wrk_urls)

log = logger("replicas")
KEY = "gw_replicas_bench_key"
PORT_BASE = int(os.environ.get("BENCH_PORT_BASE", "18300"))
FAKE_PORT, REDIS_PORT, DELAY_PORT = PORT_BASE + 1, PORT_BASE + 2, PORT_BASE + 3
GW_PORT0 = PORT_BASE + 10  # replica i listens on GW_PORT0 + 2i, its admin port on +1
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
CONNS = int(os.environ.get("BENCH_CONNS", "64"))
# Every call asks for 40 output tokens: the reservation (102 body bytes / 4 + 40 = 65)
# is within one token of what the fake reports (64), so token limits are tested on
# nearly exact reservations.
BODY = ('{"model":"bench-model","max_tokens":40,'
        '"messages":[{"role":"user","content":"Say hi in one short sentence."}]}')
TOKENS_PER_CALL = 64
# ------------------------------------------------------------------ Redis, by its protocol

def redis_cmd(*args, port=REDIS_PORT):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        f = s.makefile("rb")
        line = f.readline()
        kind, rest = line[:1], line[1:].strip()
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else f.read(n + 2)[:-2].decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        return rest.decode()


def redis_info():
    info = {}
    for line in redis_cmd("INFO", "all").splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            info[k] = v
    evalsha = info.get("cmdstat_evalsha", "calls=0").split(",")[0].split("=")[1]
    return {
        "commands": int(info["total_commands_processed"]),
        "reads": int(info.get("total_reads_processed", 0)),
        "evalsha": int(evalsha),
        "cpu": float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
    }


# ------------------------------------------------------------------ the gateways

def gateway_config(work, i, redis_port, rules, fail_open=False):
    sha = hashlib.sha256(KEY.encode()).hexdigest()
    store = f'{{ kind: redis, url: "redis://127.0.0.1:{redis_port}/0", fail_open: {str(fail_open).lower()} }}'
    if redis_port is None:
        store = "{ kind: memory }"
    text = f"""providers:
  fake:
    type: openai-compatible
    base_url: "http://127.0.0.1:{FAKE_PORT}/v1"
routes:
  - {{ models: ["bench-model"], provider: fake }}
auth:
  mode: keys
  keys: [ {{ id: bench, sha256: "{sha}", user: bench, team: load }} ]
rate_limits:
  global: {{ requests_per_minute: 1000000000, tokens_per_minute: 1000000000000 }}
  default: {rules}
  store: {store}
audit:
  sink: file
  path: "{work}/audit-{i}.jsonl"
"""
    path = os.path.join(work, f"gateway-{i}.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


NEVER = "{ requests_per_minute: 1000000000, tokens_per_minute: 1000000000000, tokens_per_day: 1000000000000 }"


def call(url):
    import urllib.request
    import urllib.error
    req = urllib.request.Request(url, data=BODY.encode(), method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


class Replicas:
    def __init__(self, procs, binary, n, redis_port=REDIS_PORT, rules=NEVER, fail_open=False):
        self.procs, self.ports, self.pids, self.handles = procs, [], [], []
        for i in range(n):
            port = GW_PORT0 + 2 * i
            cfg = gateway_config(procs.work, i, redis_port, rules, fail_open)
            data = os.path.join(procs.work, f"data-{i}")
            p = procs.start(PIN_GW + [binary, "--config", cfg, "--listen", f"127.0.0.1:{port}",
                                      "--admin-listen", f"127.0.0.1:{port + 1}",
                                      "--data-dir", data, "--log-level", "warn"], f"gateway-{i}")
            self.ports.append(port)
            self.handles.append(p)
        for port, p in zip(self.ports, self.handles):
            wait_port(port + 1, p)
        self.pids = [p.pid for p in self.handles]
        for url in self.urls():
            status, body = call(url)
            if status != 200 and (status, rules) == (429, NEVER) or status not in (200, 429):
                raise RuntimeError(f"sanity call to {url} answered {status}: {body[:300]}")

    def urls(self):
        return [f"http://127.0.0.1:{p}/v1/chat/completions" for p in self.ports]

    def stop(self):
        for p in self.handles:
            self.procs.stop(p)


def wrk_all(work, urls, seconds, conns):
    return wrk_urls(os.path.join(work, "body.json"), KEY, urls, seconds, conns)


def measure(work, replicas, seconds=SECONDS, conns=CONNS, redis=True):
    """Drives every replica at once; returns the figures of the run."""
    cpu0 = [cpu_of(p) for p in replicas.pids]
    info0 = redis_info() if redis else None
    busy0, others0 = core_busy(), all_cpu()
    t0 = time.time()
    res = wrk_all(work, replicas.urls(), seconds, conns)
    wall = time.time() - t0
    busy1, others1 = core_busy(), all_cpu()
    cpu1 = [cpu_of(p) for p in replicas.pids]
    info1 = redis_info() if redis else None
    calls = sum(r["requests"] for r in res)
    out = {
        "replicas": len(replicas.pids),
        "rps": [r["requests"] / seconds for r in res],
        "total_rps": calls / seconds,
        "ok": sum(r["ok"] for r in res),
        "non2xx": sum(r["status_errors"] for r in res),
        "errors": sum(r["errors"] for r in res),
        "p50_ms": max(r["p50_us"] for r in res) / 1000,
        "p99_ms": max(r["p99_us"] for r in res) / 1000,
        "cpu_us_per_call": [(b - a) * 1e6 / max(1, r["requests"]) for a, b, r in zip(cpu0, cpu1, res)],
        "core0": busy_share(busy0, busy1, "cpu0") if "cpu0" in busy0 else None,
        "core1": busy_share(busy0, busy1, "cpu1") if "cpu1" in busy0 else None,
        "other_cpu": other_cpu(others0, others1, wall),
        "calls": calls,
    }
    if redis:
        out["redis_commands_per_call"] = (info1["commands"] - info0["commands"]) / max(1, calls)
        out["redis_evalsha_per_call"] = (info1["evalsha"] - info0["evalsha"]) / max(1, calls)
        out["redis_reads_per_call"] = (info1["reads"] - info0["reads"]) / max(1, calls)
        out["redis_cpu_ms_per_1000"] = (info1["cpu"] - info0["cpu"]) * 1e6 / max(1, calls)
    return out


# ------------------------------------------------------------------ fixed-rate client

async def fixed_rate(urls, rate, seconds, events=()):
    """Sends `rate` calls a second for `seconds`, spread over `urls` in turn, each
    at its scheduled time whatever the others do. `events` are (second, callable) run
    at those offsets. Returns per-second buckets of outcomes and latencies."""
    import aiohttp

    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    timeout = aiohttp.ClientTimeout(total=10)
    samples = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256),
                                     timeout=timeout) as session:
        async def one(i, at):
            url = urls[i % len(urls)]
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=BODY, headers=headers) as r:
                    await r.read()
                    status = r.status
            except Exception:
                status = 0
            samples.append((at, status, (time.perf_counter() - t0) * 1000))

        loop = asyncio.get_running_loop()
        start = loop.time()
        pending = sorted(events)
        tasks = []
        total = int(rate * seconds)
        for i in range(total):
            at = i / rate
            while pending and pending[0][0] <= at:
                _, action = pending.pop(0)
                await loop.run_in_executor(None, action)
            delay = start + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, at)))
        await asyncio.gather(*tasks)
    return samples


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def buckets(samples):
    rows = {}
    for at, status, ms in samples:
        b = rows.setdefault(int(at), {"200": 0, "429": 0, "503": 0, "other": 0, "ms": []})
        key = str(status) if str(status) in b else "other"
        b[key] += 1
        b["ms"].append(ms)
    return [(sec, b["200"], b["429"], b["503"], b["other"], pct(b["ms"], 50), pct(b["ms"], 99))
            for sec, b in sorted(rows.items())]


# ------------------------------------------------------------------ a slow Redis

def delay_proxy(listen, target, delay_ms):
    """Forwards TCP to Redis, holding every chunk `delay_ms`/2 each way: one round
    trip costs `delay_ms` more, order kept, throughput not limited."""
    half = delay_ms / 2000

    async def pump(reader, writer):
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()

        async def send():
            while True:
                due, data = await queue.get()
                if data is None:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = asyncio.create_task(send())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + half, data))
        except ConnectionError:
            pass
        queue.put_nowait((0, None))
        await sender

    async def serve(reader, writer):
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pump(reader, up_w), pump(up_r, writer), return_exceptions=True)

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", listen)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# ------------------------------------------------------------------ the run

def wait_for_fresh_minute(need_seconds):
    """Per-minute limits are counted in calendar minutes: a round must not straddle one."""
    second = time.time() % 60
    if second + need_seconds > 58:
        wait = 60 - second + 0.5
        log(f"waiting {wait:.0f} s for a fresh rate-limit minute")
        time.sleep(wait)


def main():
    binary = os.environ["AI_GATEWAY_BIN_RESOLVED"]
    build = os.environ.get("AI_GATEWAY_BIN_BUILD", "release build")
    work = tempfile.mkdtemp(prefix="ai-gateway-replicas.")
    os.chmod(work, 0o755)  # nginx's workers read the fixtures as another user
    procs = Procs(work)
    with open(os.path.join(work, "body.json"), "w") as f:
        f.write(BODY)
    www = os.path.join(work, "www", "static")
    os.makedirs(www)
    os.makedirs(os.path.join(work, "tmp"))
    fixtures = os.path.join(REPO, "dataplane/tests/fixtures/upstream/openai")
    for src, dst in (("chat_text.json", "chat.json"), ("stream_text.sse", "stream.sse")):
        with open(os.path.join(fixtures, src), "rb") as a, open(os.path.join(www, dst), "wb") as b:
            b.write(a.read())
    with open(os.path.join(HERE, "fake-upstream.nginx.conf.in")) as f:
        conf = f.read().replace("@DIR@", work).replace("@FAKE_PORT@", str(FAKE_PORT))
    with open(os.path.join(work, "fake.conf"), "w") as f:
        f.write(conf)
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "binary": binary,
              "build": build, "rev": repo_rev(),
              "redis": subprocess.run(["redis-server", "--version"], capture_output=True,
                                      text=True).stdout.strip()}
    try:
        fake = procs.start(PIN_LOAD + ["nginx", "-c", os.path.join(work, "fake.conf"), "-e",
                                       os.path.join(work, "fake-error.log")], "fake")
        wait_port(FAKE_PORT, fake)

        def start_redis():
            p = procs.start(PIN_LOAD + ["redis-server", "--bind", "127.0.0.1", "--port", str(REDIS_PORT),
                                        "--save", "", "--appendonly", "no"], "redis")
            wait_port(REDIS_PORT, p)
            return p

        redis = start_redis()
        report["throughput"] = throughput(procs, binary, work)
        report["exactness"] = exactness(procs, binary, work)
        report["slow_redis"] = slow_redis(procs, binary, work)
        report["restart"], redis = restart(procs, binary, work, redis, start_redis)
    finally:
        procs.stop_all()
    write_results(work, report, render, "RESULTS-replicas.md", log)


def throughput(procs, binary, work):
    rows = []
    for label, n, redis_port in (("1 process, limits in memory", 1, None),
                                 ("1 process, limits in Redis", 1, REDIS_PORT),
                                 ("2 processes, one Redis", 2, REDIS_PORT),
                                 ("4 processes, one Redis", 4, REDIS_PORT)):
        reps = Replicas(procs, binary, n, redis_port=redis_port)
        wrk_all(work, reps.urls(), 1, CONNS)  # warm-up: connections, pools, scripts
        rounds = []
        for r in range(3):
            m = measure(work, reps, redis=redis_port is not None)
            m["round"] = r + 1
            rounds.append(m)
            log(f"{label}: {m['total_rps']:,.0f} req/s (round {r + 1}), other CPU {m['other_cpu']:.0%}")
        reps.stop()
        quiet = [m for m in rounds if m["other_cpu"] <= 0.10] or rounds
        median = sorted(quiet, key=lambda m: m["total_rps"])[len(quiet) // 2]
        rows.append({"label": label, "median": median, "rounds": rounds})
    return rows


def exactness(procs, binary, work):
    rows = []
    for n in (2, 4):
        for kind, rules, limit in (
                ("requests_per_minute", "{ requests_per_minute: 3000 }", 3000),
                ("tokens_per_minute", "{ tokens_per_minute: 192000 }", 192000)):
            reps = Replicas(procs, binary, n, rules=rules)
            wait_for_fresh_minute(SECONDS + 3)
            redis_cmd("FLUSHALL")  # the replicas' sanity calls are not the caller's
            m = measure(work, reps, seconds=3)
            reps.stop()
            ok = m["ok"]
            if kind == "requests_per_minute":
                overshoot = ok - limit
            else:
                # Admission lets a caller in while any token budget remains, so the
                # last call of each replica may pass the line; counted in calls.
                overshoot = (ok * TOKENS_PER_CALL - limit + TOKENS_PER_CALL - 1) // TOKENS_PER_CALL
            rows.append({"replicas": n, "kind": kind, "limit": limit, "offered": m["calls"],
                         "admitted": ok, "refused": m["non2xx"], "errors": m["errors"],
                         "tokens": ok * TOKENS_PER_CALL, "overshoot_calls": overshoot,
                         "within": 0 <= overshoot <= n, "other_cpu": m["other_cpu"]})
            log(f"exactness {n} replicas {kind}: admitted {ok} of {m['calls']}, overshoot {overshoot} call(s)")
    return rows


def slow_redis(procs, binary, work):
    """Two replicas at a fixed 1,000 calls/s with Redis reached directly, then through
    a proxy that adds 5 ms to every round trip; then each at saturation."""
    proxy = procs.start(PIN_LOAD + [sys.executable, os.path.abspath(__file__), "delay-proxy",
                                    str(DELAY_PORT), str(REDIS_PORT), "5"], "delay-proxy")
    wait_port(DELAY_PORT, proxy)
    rows = []
    for label, port in (("direct", REDIS_PORT), ("+5 ms a round trip", DELAY_PORT)):
        redis_cmd("FLUSHALL")
        reps = Replicas(procs, binary, 2, redis_port=port)
        wrk_all(work, reps.urls(), 1, CONNS)
        light = asyncio.run(fixed_rate(reps.urls(), 50, 4))
        light_ms = [s[2] for s in light if s[1] == 200]
        samples = asyncio.run(fixed_rate(reps.urls(), 1000, 5))
        ms = [s[2] for s in samples if s[1] == 200]
        sat = measure(work, reps, redis=True)
        reps.stop()
        rows.append({"label": label, "light_p50_ms": pct(light_ms, 50), "light_p99_ms": pct(light_ms, 99),
                     "ok": len(ms), "sent": len(samples),
                     "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "max_rps": sat["total_rps"],
                     "sat_p50_ms": sat["p50_ms"], "sat_p99_ms": sat["p99_ms"],
                     "sat_non2xx": sat["non2xx"], "other_cpu": sat["other_cpu"]})
        log(f"redis {label}: p50 {pct(ms, 50):.2f} ms p99 {pct(ms, 99):.2f} ms at 1,000/s; max {sat['total_rps']:,.0f} req/s")
    procs.stop(proxy)
    return rows


def restart(procs, binary, work, redis, start_redis):
    """Two replicas at 500 calls/s; Redis is killed at 3 s and back at 6 s (no
    persistence: it comes back empty). Fail closed (the default), then fail open."""
    out = []
    for fail_open in (False, True):
        reps = Replicas(procs, binary, 2, fail_open=fail_open)
        wrk_all(work, reps.urls(), 1, 8)
        state = {"redis": redis}

        def kill():
            procs.stop(state["redis"], signal.SIGKILL)

        def revive():
            state["redis"] = start_redis()

        samples = asyncio.run(fixed_rate(reps.urls(), 500, 10, events=[(3, kill), (6, revive)]))
        redis = state["redis"]
        reps.stop()
        out.append({"fail_open": fail_open, "seconds": buckets(samples)})
        log(f"restart (fail_open {fail_open}): {sum(1 for s in samples if s[1] == 200)} of {len(samples)} answered 200")
    return out, redis


# ------------------------------------------------------------------ the report

def render(rep):
    w = []
    w.append("# Many replicas on one Redis\n")
    w.append(f"- date: {rep['date']}")
    w.append(f"- machine: {os.cpu_count()} cores; gateways share core 1, load + fake upstream + Redis core 0")
    w.append(f"- gateway: `{rep['binary']}` ({rep['build']}, repo at {rep['rev']}); {rep['redis']}")
    w.append("- rerun: `bash dataplane/bench/replicas.sh` (about 4 minutes)")
    w.append("- every call: a gateway key checked, per-user and global limits (requests and tokens a minute, "
             "tokens a day) admitted and settled in Redis, the usage ledgers written, an audit line to a file\n")
    w.append("*other CPU* = share of a core used meanwhile by processes this run did not start; "
             "above 10 % the row is disturbed and marked `*`.\n")

    w.append("## Throughput: the replicas share one core, so the total is what one core does\n")
    w.append(f"wrk, {CONNS} keep-alive connections split over the replicas, {SECONDS} s after a 1 s warm-up, 3 rounds; the median round. "
             "*CPU/call* = the replica's own CPU time per call it answered (the per-core cost). "
             "*Redis* columns: commands, script calls (EVALSHA) and socket reads (round trips as Redis sees them, "
             "pipelined ones counted once) per call, and Redis's CPU per 1,000 calls.\n")
    w.append("| shape | total req/s | req/s by round | per replica req/s | CPU/call µs | p50 ms | p99 ms | non-2xx | core 0 busy | core 1 busy | Redis cmds/call | EVALSHA/call | Redis reads/call | Redis CPU ms/1,000 calls | other CPU |")
    w.append("|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = None
    for row in rep["throughput"]:
        m = row["median"]
        by_round = " / ".join(f"{r['total_rps']:,.0f}{'*' if r['other_cpu'] > 0.10 else ''}" for r in row["rounds"])
        per = " / ".join(f"{x:,.0f}" for x in m["rps"])
        cpu = " / ".join(f"{x:.1f}" for x in m["cpu_us_per_call"])
        red = lambda k, f="{:.2f}": f.format(m[k]) if k in m else "—"
        w.append(f"| {row['label']} | {m['total_rps']:,.0f} | {by_round} | {per} | {cpu} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | "
                 f"{m['non2xx']} | {m['core0']:.0%} | {m['core1']:.0%} | {red('redis_commands_per_call')} | "
                 f"{red('redis_evalsha_per_call')} | {red('redis_reads_per_call')} | {red('redis_cpu_ms_per_1000', '{:.1f}')} | {m['other_cpu']:.0%} |")
        if row["label"] == "1 process, limits in Redis":
            base = m
    w.append("")
    if base:
        for row in rep["throughput"][2:]:
            m = row["median"]
            cpu = sum(m["cpu_us_per_call"]) / len(m["cpu_us_per_call"])
            per_core = base["cpu_us_per_call"][0] / cpu
            w.append(f"- {row['label']}: a replica's calls per CPU-second are {per_core:.0%} of one process's "
                     f"({'within' if per_core >= 0.85 else 'NOT within'} 15 %; {cpu:.1f} µs of CPU a call against "
                     f"{base['cpu_us_per_call'][0]:.1f} µs, the replicas taking turns on one core); together they served "
                     f"{m['total_rps'] / base['total_rps']:.0%} of one process's req/s.")
        bound = [row["label"] for row in rep["throughput"]
                 if row["median"]["core0"] and row["median"]["core0"] > 0.9 and row["median"]["core1"] < 0.97]
        if bound:
            w.append(f"- Core 0 (Redis, the load generator and the fake upstream) was the limit, not the gateways' core, in: "
                     f"{'; '.join(bound)}. Compare those rows by CPU per call.")
        mem = rep["throughput"][0]["median"]
        w.append(f"- Limits in Redis instead of memory: {base['total_rps'] / mem['total_rps']:.0%} of the req/s, "
                 f"{base['cpu_us_per_call'][0] - mem['cpu_us_per_call'][0]:+.1f} µs of gateway CPU per call.")
    w.append("")

    w.append("## Exactness: one caller at full speed through every replica\n")
    w.append("wrk for 3 s inside one calendar minute, after FLUSHALL; the caller's limit is the only one that bites. "
             f"Each call uses {TOKENS_PER_CALL} tokens. *overshoot* = calls admitted beyond the limit "
             "(tokens: beyond the last call that fit); the requirement is at most one per replica.\n")
    w.append("| replicas | limit | offered | admitted | refused (429) | errors | tokens admitted | overshoot (calls) | ≤ 1 a replica | other CPU |")
    w.append("|---:|---|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in rep["exactness"]:
        w.append(f"| {r['replicas']} | {r['kind']} {r['limit']:,} | {r['offered']:,} | {r['admitted']:,} | {r['refused']:,} | "
                 f"{r['errors']} | {r['tokens']:,} | {r['overshoot_calls']} | {'yes' if r['within'] else 'NO'} | "
                 f"{r['other_cpu']:.0%}{'*' if r['other_cpu'] > 0.10 else ''} |")
    w.append("")

    w.append("## A slow Redis: 5 ms added to every round trip\n")
    w.append("Two replicas; this script's client at a fixed 50 calls/s for 4 s, then 1,000 calls/s for 5 s (latency "
             f"includes the Python client's own), then wrk at saturation ({CONNS} connections). A TCP proxy (Python, on "
             "core 0 with the load) holds every chunk 2.5 ms each way.\n")
    w.append("| Redis | p50 ms at 50/s | p99 ms at 50/s | 200s of sent at 1,000/s | p50 ms | p99 ms | max req/s | p50 ms at max | p99 ms at max | non-2xx at max | other CPU |")
    w.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rep["slow_redis"]:
        w.append(f"| {r['label']} | {r['light_p50_ms']:.2f} | {r['light_p99_ms']:.2f} | {r['ok']:,} of {r['sent']:,} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_rps']:,.0f} | "
                 f"{r['sat_p50_ms']:.2f} | {r['sat_p99_ms']:.2f} | {r['sat_non2xx']} | {r['other_cpu']:.0%}{'*' if r['other_cpu'] > 0.10 else ''} |")
    w.append("")

    w.append("## Redis restarts mid-run\n")
    w.append("Two replicas at 500 calls/s for 10 s; Redis is killed (SIGKILL) at 3 s and started again at 6 s, "
             "empty (no persistence). Per second of sending: answers by status, and latency of all answers.\n")
    for r in rep["restart"]:
        mode = "fail open (`fail_open: true`)" if r["fail_open"] else "fail closed (the default)"
        w.append(f"### {mode}\n")
        w.append("| second | 200 | 429 | 503 | other/failed | p50 ms | p99 ms |")
        w.append("|---:|---:|---:|---:|---:|---:|---:|")
        for sec, ok, r429, r503, other, p50, p99 in r["seconds"]:
            w.append(f"| {sec} | {ok} | {r429} | {r503} | {other} | {p50:.1f} | {p99:.1f} |")
        w.append("")
    return "\n".join(w) + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "delay-proxy":
        delay_proxy(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    else:
        main()
