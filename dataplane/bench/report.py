"""Helpers for run.sh: summarise an h2load per-request log, account CPU, and render
RESULTS.md.

  report.py h2log LOGFILE SECONDS          -> JSON summary on stdout
  report.py cpusnap PID...                 -> one-line JSON CPU snapshot on stdout
  report.py cpudiff SNAP0 SNAP1 SERVER_PID -> JSON CPU use between two snapshots
  report.py merge FILE.json JSON           -> adds JSON's keys to FILE.json
  report.py render OUTDIR                  -> markdown on stdout
"""
import json
import os
import sys

TARGETS = ["direct", "nginx", "gateway"]
OTHER_LIMIT = 10  # % of a core used by other processes above which a figure is disturbed
LABEL = {"direct": "direct to fake upstream", "nginx": "via nginx proxy", "gateway": "via ai-gateway"}


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


# h2load's connections tick together at a fixed rate, so requests leave in bursts, one
# per connection: those sent within this many microseconds of a burst's first.
BURST_US = 200


def h2log(path, seconds):
    durations, non2xx, sent = [], 0, []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            start, status, dur = int(parts[0]), int(parts[1]), int(parts[2])
            if not 200 <= status < 300:
                non2xx += 1
                continue
            durations.append(dur)
            sent.append((start, dur))
    # A burst whose fastest call is slow started late (the proxy's core woke late, or
    # was busy), whatever each call's own work: the p99 of those against the p99 of all
    # calls tells a late start from a slow call.
    sent.sort()
    fastest, first = [], None
    for start, dur in sent:
        if first is None or start - first > BURST_US:
            first = start
            fastest.append(dur)
        else:
            fastest[-1] = min(fastest[-1], dur)
    fastest.sort()
    durations.sort()
    n = len(durations) + non2xx
    out = {"requests": n, "non2xx": non2xx, "rps": round(n / float(seconds), 1)}
    for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)):
        out[name + "_us"] = pct(durations, p)
    out["max_us"] = durations[-1] if durations else None
    out["burst_fastest_p99_us"] = pct(fastest, 99)
    print(json.dumps(out))


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()  # fields from #3 (state) on


def proc_ticks(pid):
    """utime+stime+cutime+cstime of pid, plus utime+stime of its live children."""
    try:
        f = _stat_fields(pid)
    except OSError:
        return 0
    total = sum(int(x) for x in f[11:15])
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            c = _stat_fields(entry)
        except (OSError, ValueError):
            continue
        if c[1] == str(pid):
            total += int(c[11]) + int(c[12])
    return total


def cpusnap(pids):
    import time
    cpus = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu"):
                break
            p = line.split()
            v = [int(x) for x in p[1:9]]  # user nice system idle iowait irq softirq steal
            cpus[p[0]] = {"usersys": v[0] + v[1] + v[2], "busy": sum(v) - v[3] - v[4], "total": sum(v),
                          "steal": v[7]}
    print(json.dumps({"t": time.time(), "cpus": cpus, "procs": {p: proc_ticks(p) for p in pids}}))


def cpudiff(a, b, server_pid):
    a, b = json.loads(a), json.loads(b)
    hz = os.sysconf("SC_CLK_TCK")
    wall = b["t"] - a["t"]
    out = {}
    for cpu in b["cpus"]:
        if cpu == "cpu":
            continue
        d = {k: b["cpus"][cpu][k] - a["cpus"][cpu][k] for k in ("busy", "total")}
        out[f"{cpu}_busy_pct"] = round(100.0 * d["busy"] / d["total"]) if d["total"] else None
    ours = sum(b["procs"][p] - a["procs"].get(p, 0) for p in b["procs"])
    usersys = b["cpus"]["cpu"]["usersys"] - a["cpus"]["cpu"]["usersys"]
    out["other_cpu_pct"] = max(0, round(100.0 * (usersys - ours) / hz / wall))
    out["steal_pct"] = round(100.0 * (b["cpus"]["cpu"]["steal"] - a["cpus"]["cpu"]["steal"]) / hz / wall)
    srv = str(server_pid)
    out["cpu_pct"] = round(100.0 * (b["procs"][srv] - a["procs"][srv]) / hz / wall)
    # unrounded, for CPU a call at low load, where a whole percent is several µs
    out["cpu_core"] = round((b["procs"][srv] - a["procs"][srv]) / hz / wall, 4)
    print(json.dumps(out))


def merge(path, extra):
    with open(path) as f:
        d = json.load(f)
    d.update(json.loads(extra))
    with open(path, "w") as f:
        json.dump(d, f)


def load(outdir, name):
    path = os.path.join(outdir, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def disturbance(r):
    return (r.get("other_cpu_pct") or 0) + (r.get("steal_pct") or 0)


def disturbed(*results):
    return any(r is not None and disturbance(r) > OTHER_LIMIT for r in results)


def fixed_summary(outdir, mode, target):
    """Median over the undisturbed rounds (over all rounds when every one was disturbed)
    of each percentile; every round's p99; pooled counts."""
    import glob
    import statistics
    rounds = []
    for path in sorted(glob.glob(os.path.join(outdir, f"fixed-{mode}-{target}-r*.json"))):
        with open(path) as f:
            rounds.append(json.load(f))
    if not rounds:
        return None
    clean = [r for r in rounds if disturbance(r) <= OTHER_LIMIT]
    use = clean or rounds
    out = {}
    for k in ("p50_us", "p90_us", "p99_us", "p999_us", "burst_fastest_p99_us"):
        vals = [r[k] for r in use if r.get(k) is not None]
        out[k] = statistics.median(vals) if vals else None
    out["max_us"] = max((r["max_us"] for r in use if r.get("max_us") is not None), default=None)
    out["rps"] = statistics.mean(r["rps"] for r in rounds)
    out["non2xx"] = sum(r["non2xx"] for r in rounds)
    out["cpu_pct"] = round(statistics.mean(r.get("cpu_pct") or 0 for r in use))
    out["cpu_core"] = statistics.mean(r.get("cpu_core") or 0 for r in use)
    # the summary counts as disturbed only when no round was clean
    out["other_cpu_pct"] = min(disturbance(r) for r in rounds)
    out["round_p99"] = [(r.get("p99_us"), disturbance(r) > OTHER_LIMIT) for r in rounds]
    out["clean_rounds"] = len(clean)
    return out


def ms(us):
    return "n/a" if us is None else f"{us / 1000.0:.3f}"


def max_rounds(outdir, mode, target):
    """Every max-throughput round of one path, in order (round 1 first)."""
    import glob
    paths = glob.glob(os.path.join(outdir, f"max-{mode}-{target}-r*.json"))
    paths.sort(key=lambda p: int(p.rsplit("-r", 1)[1].split(".")[0]))
    return [json.load(open(p)) for p in paths]


def median_round(rounds):
    """The round with the median req/s among the undisturbed ones (all, if none is)."""
    use = [r for r in rounds if not disturbed(r)] or rounds
    if not use:
        return None
    return sorted(use, key=lambda r: r["rps"])[(len(use) - 1) // 2]


def cpu_us(r):
    core = r.get("cpu_core") or (r.get("cpu_pct") or 0) / 100.0
    if not core or not r.get("rps"):
        return "n/a"
    return f"{core / r['rps'] * 1e6:.0f}"


def pcts(r, key):
    v = r.get(key)
    return "n/a" if v is None else f"{v}%"


def added(us, base):
    if us is None or base is None:
        return "n/a"
    return f"{(us - base) / 1000.0:+.3f}"


def render(outdir):
    meta = {}
    with open(os.path.join(outdir, "meta.txt")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            meta[k] = v
    rate = int(meta["rate"])
    L = []
    w = L.append
    w("# ai-gateway data-plane load benchmark")
    w("")
    w(f"- date: {meta['date']}")
    w(f"- machine: {meta['nproc']} cores (`nproc`), {meta['cpu']}, Linux {meta['kernel']}")
    w(f"- gateway: `{meta['binary']}` ({meta.get('build', 'release build')}, repo at {meta['rev']})")
    w(f"- tools: nginx {meta['nginx']} (fake upstream and proxy), h2load {meta['h2load']}, wrk {meta['wrk']}, python aiohttp")
    # The settings this run was made with, where they differ from run.sh's defaults.
    settings = " ".join(
        f"{name}={meta[key]}"
        for name, key, default in (("BENCH_GOVERNED", "governed", "0"), ("BENCH_ROUNDS", "rounds", "3"),
                                   ("BENCH_MAX_ROUNDS", "max_rounds", "3"))
        if meta.get(key, default) != default)
    w("- rerun: `bash dataplane/pgo/build.sh` once (the binary as the image ships it), then "
      f"`{settings + ' ' if settings else ''}bash dataplane/bench/run.sh` (about 4 minutes with three rounds)")
    if meta.get("quiet_waited", "0") != "0":
        w(f"- other processes were busy: {meta['quiet_waited']} s spent waiting for quiet; "
          f"{meta.get('repeats', '?')} disturbed measurement(s) repeated")
    w("")
    w("Setup, all on 127.0.0.1: a fake OpenAI-compatible upstream (nginx serving the "
      "`tests/fixtures/upstream/openai` chat completion and SSE stream as static files); "
      "nginx as a plain keep-alive reverse proxy in front of it (the one-hop yardstick); "
      "ai-gateway with one `openai-compatible` provider pointed at the fake, auth `none`, "
      "a never-reached rate limit and the audit log to stdout (`/dev/null`). "
      + ("The proxy under test (nginx or the gateway) runs alone on core 1 (`taskset -c 1`); "
         "the load generator and the fake upstream share core 0. "
         if meta.get("pinned") == "yes" else "Nothing was pinned (fewer than 2 cores). ")
      + "*added* = the figure minus the same figure for the direct call, in ms. "
      "All latencies in ms. *server CPU* = CPU time of the server being called (the fake for "
      "direct, else the proxy), 100% = one core; *other CPU* = CPU used meanwhile by processes "
      "the benchmark did not start: above 10% of a core the figure is disturbed.")
    w("")

    # ---- fixed rate
    w(f"## Latency at a fixed {rate:,} requests/s")
    w("")
    w(f"h2load, HTTP/1.1, {meta['fixed_conns']} keep-alive connections at {rate // int(meta['fixed_conns'])} req/s each; "
      f"{meta['rounds']} rounds, each running every path for {meta['fixed_seconds']} s after {meta['warmup']} s warm-up, "
      "paths interleaved; latency = request sent to last byte received. Percentiles and *max* are the median "
      "and maximum over the rounds that other processes left alone (over all rounds if none was); "
      "*p99 by round* shows every round, `*` marking a disturbed one; *other CPU* here is the least over the rounds. "
      "The connections send together, so calls leave in bursts: *burst start p99* is the p99 of each burst's "
      "fastest call, near the p99 of all calls when the tail is bursts that started late (the core woke late "
      "or was busy) rather than slow calls; *CPU a call* is *server CPU* over the rate.")
    w("")
    for mode, title in (("nonstream", "Non-streaming (`POST /v1/chat/completions`)"),
                        ("stream", "Streaming (`\"stream\": true`, SSE, to the last byte)")):
        w(f"### {title}")
        w("")
        w("| path | achieved req/s | p50 | p90 | p99 | p99.9 | max | p99 by round | added p50 | added p99 | burst start p99 | non-2xx | server CPU | CPU a call (µs) | other CPU |")
        w("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        base = fixed_summary(outdir, mode, "direct") or {}
        for t in TARGETS:
            r = fixed_summary(outdir, mode, t)
            if r is None:
                w(f"| {LABEL[t]} | n/a ||||||||||||||")
                continue
            w(f"| {LABEL[t]} | {r['rps']:,.0f} | {ms(r['p50_us'])} | {ms(r['p90_us'])} | {ms(r['p99_us'])} | "
              f"{ms(r['p999_us'])} | {ms(r['max_us'])} | {' / '.join(ms(v) + ('*' if bad else '') for v, bad in r['round_p99'])} | "
              f"{'—' if t == 'direct' else added(r['p50_us'], base.get('p50_us'))} | "
              f"{'—' if t == 'direct' else added(r['p99_us'], base.get('p99_us'))} | "
              f"{ms(r['burst_fastest_p99_us'])} | {r['non2xx']} | "
              f"{pcts(r, 'cpu_pct')} | {cpu_us(r)} | {pcts(r, 'other_cpu_pct')} |")
        w("")

    # ---- TTFB
    w("## Streaming: time to first byte and to last byte")
    w("")
    w(f"Python aiohttp client, {int(meta['stream_requests']):,} streamed requests (after 200 warm-up) at "
      f"concurrency {meta['stream_conc']}; first byte = first body chunk. The client is Python, so "
      "absolute figures include its own overhead; the *added* columns are the comparison. "
      "The fake sends its whole SSE body at once, so the direct TTFB and TTLB are close.")
    w("")
    w("| path | req/s | TTFB p50 | TTFB p99 | TTLB p50 | TTLB p99 | added TTFB p50 | added TTFB p99 | added TTLB p50 | added TTLB p99 | errors | other CPU |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = load(outdir, "ttfb-direct.json") or {}
    for t in TARGETS:
        r = load(outdir, f"ttfb-{t}.json")
        if r is None:
            w(f"| {LABEL[t]} | n/a ||||||||||")
            continue
        d = t == "direct"
        w(f"| {LABEL[t]} | {r['rps']:,.0f} | {ms(r['ttfb_p50_us'])} | {ms(r['ttfb_p99_us'])} | {ms(r['ttlb_p50_us'])} | "
          f"{ms(r['ttlb_p99_us'])} | "
          + " | ".join("—" if d else added(r[k], base.get(k))
                       for k in ("ttfb_p50_us", "ttfb_p99_us", "ttlb_p50_us", "ttlb_p99_us"))
          + f" | {r['errors']} | {pcts(r, 'other_cpu_pct')} |")
    w("")

    # ---- max throughput
    w("## Max throughput")
    w("")
    w(f"wrk, 1 thread, {meta['max_conns']} keep-alive connections, {meta['max_seconds']} s after 1 s warm-up "
      "(closed loop: latency here is at saturation). Core 1 runs only the proxy under test, so "
      "*core 1 busy* near 100% means the proxy was the bottleneck (its *server CPU* is lower "
      "because loopback softirq time is not charged to the process); *core 0 busy* near 100% "
      "means the load generator and fake upstream were the limit, so that row is a lower bound "
      "for its path (always the case for the direct row).")
    w("")
    w("One row per path: the round with the median req/s (over the rounds other processes left "
      "alone); *req/s by round* lists every round in order, `*` marking a disturbed one.")
    w("")
    w("| path | mode | req/s | req/s by round | p50 | p99 | server CPU | core 0 busy | core 1 busy | other CPU | errors |")
    w("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode in ("nonstream", "stream"):
        for t in TARGETS:
            rounds = max_rounds(outdir, mode, t)
            r = median_round(rounds)
            if r is None:
                w(f"| {LABEL[t]} | {mode} | n/a |||||||||")
                continue
            by_round = " / ".join(f"{x['rps']:,.0f}" + ("*" if disturbed(x) else "") for x in rounds)
            w(f"| {LABEL[t]} | {'stream' if mode == 'stream' else 'non-stream'} | {r['rps']:,.0f} | {by_round} | "
              f"{ms(r['p50_us'])} | {ms(r['p99_us'])} | {pcts(r, 'cpu_pct')} | {pcts(r, 'cpu0_busy_pct')} | "
              f"{pcts(r, 'cpu1_busy_pct')} | {pcts(r, 'other_cpu_pct')} | {r['errors'] + r['status_errors']} |")
    w("")

    # ---- RSS
    samples = []
    with open(os.path.join(outdir, "rss.log")) as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) == 3:
                samples.append((int(parts[0]), int(parts[1]), parts[2]))
    w("## Gateway memory (VmRSS, sampled every second)")
    w("")
    if samples:
        peak = max(samples, key=lambda s: s[1])
        w("| start (idle) | peak | end (idle, after load) | samples |")
        w("|---:|---:|---:|---:|")
        w(f"| {samples[0][1] / 1024:.1f} MiB | {peak[1] / 1024:.1f} MiB (during: {peak[2]}) | "
          f"{samples[-1][1] / 1024:.1f} MiB | {len(samples)} |")
    else:
        w("no samples")
    w("")

    # ---- verdict
    w("## Reading")
    w("")
    noisy = []
    for mode in ("nonstream", "stream"):
        for t in TARGETS:
            s = fixed_summary(outdir, mode, t)
            if s and disturbed(s):
                noisy.append(f"fixed-rate {mode} {t} (every round)")
    for name in sorted(os.listdir(outdir)):
        if name.endswith(".json") and not name.startswith("fixed-"):
            r = load(outdir, name)
            if disturbed(r):
                noisy.append(f"{name[:-5]} ({disturbance(r)}%)")
    if noisy:
        w("- WARNING: other processes used CPU during " + ", ".join(noisy)
          + "; those figures are disturbed (other processes took more than 10% of a core): rerun on a quiet machine.")
    else:
        w("- The machine was quiet during every measurement (other CPU ≤ 10% of a core).")
    fg, fn, fd = (fixed_summary(outdir, "nonstream", t) for t in ("gateway", "nginx", "direct"))
    if fg and fn and fd:
        gp99 = (fg["p99_us"] - fd["p99_us"]) / 1000.0
        np99 = (fn["p99_us"] - fd["p99_us"]) / 1000.0
        gp50 = (fg["p50_us"] - fd["p50_us"]) / 1000.0
        np50 = (fn["p50_us"] - fd["p50_us"]) / 1000.0
        verdict = "within" if gp99 <= 1.0 else "OVER"
        w(f"- Non-streaming at {rate:,} req/s the gateway adds {gp50:.3f} ms at p50 and {gp99:.3f} ms at p99 "
          f"(nginx: {np50:.3f} / {np99:.3f} ms): {verdict} a 1 ms added-p99 budget"
          + (" (disturbed: not conclusive)." if disturbed(fg, fd) else "."))
    sg, sn, sd = (fixed_summary(outdir, "stream", t) for t in ("gateway", "nginx", "direct"))
    if sg and sn and sd:
        gp99 = (sg["p99_us"] - sd["p99_us"]) / 1000.0
        np99 = (sn["p99_us"] - sd["p99_us"]) / 1000.0
        verdict = "within" if gp99 <= 1.0 else "OVER"
        w(f"- Streaming at {rate:,} req/s (to last byte) the gateway adds {(sg['p50_us'] - sd['p50_us']) / 1000:.3f} ms "
          f"at p50 and {gp99:.3f} ms at p99 (nginx: {(sn['p50_us'] - sd['p50_us']) / 1000:.3f} / {np99:.3f} ms): "
          f"{verdict} a 1 ms added-p99 budget" + (" (disturbed: not conclusive)." if disturbed(sg, sd) else "."))
    for mode, word in (("nonstream", "Non-streaming"), ("stream", "Streaming")):
        pairs = list(zip(max_rounds(outdir, mode, "gateway"), max_rounds(outdir, mode, "nginx")))
        # Each round's gateway run against the nginx run just before it; the verdict is
        # the median ratio over the rounds that were left alone.
        calm = [(g, n) for g, n in pairs if not disturbed(g, n) and n["rps"]] or [p for p in pairs if p[1]["rps"]]
        if not calm:
            continue
        ratios = sorted(g["rps"] / n["rps"] for g, n in calm)
        ratio = ratios[(len(ratios) - 1) // 2]
        g, n = next((g, n) for g, n in calm if g["rps"] / n["rps"] == ratio)
        flag = "at least half of" if ratio >= 0.5 else "BELOW HALF of"
        w(f"- {word} max throughput: the gateway served {ratio:.0%} of nginx's req/s (median over "
          f"{len(calm)} round(s); by round "
          + " / ".join(f"{a['rps'] / b['rps']:.0%}" for a, b in pairs if b["rps"])
          + f"), {flag} nginx's; in that round {g['rps']:,.0f} vs {n['rps']:,.0f} req/s (core 1 busy: "
          f"gateway {pcts(g, 'cpu1_busy_pct')}, nginx {pcts(n, 'cpu1_busy_pct')}; per request the gateway "
          f"used {cpu_us(g)} µs of CPU, nginx {cpu_us(n)} µs)"
          + (" (disturbed: not conclusive)." if disturbed(g, n) else "."))
    w("")
    print("\n".join(L))


if __name__ == "__main__":
    if sys.argv[1] == "h2log":
        h2log(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "cpusnap":
        cpusnap(sys.argv[2:])
    elif sys.argv[1] == "cpudiff":
        cpudiff(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "merge":
        merge(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "render":
        render(sys.argv[2])
    else:
        sys.exit(__doc__)
