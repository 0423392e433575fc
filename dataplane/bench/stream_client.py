"""Streamed chat completions at bounded concurrency: time to first body byte and to
last byte per request. Prints one JSON object.

usage: stream_client.py URL BODY_FILE REQUESTS CONCURRENCY [WARMUP]
"""
import asyncio
import json
import os
import sys
import time

import aiohttp


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def r(v):
    return None if v is None else round(v)


async def main(url, body, n, conc, warmup):
    headers = {"Content-Type": "application/json", "X-Bench-Stream": "1",
               "Authorization": "Bearer " + os.environ.get("BENCH_KEY", "")}
    connector = aiohttp.TCPConnector(limit=conc)
    ttfb, ttlb = [], []
    errors = 0
    bad = []
    counter = iter(range(warmup + n))
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as s:

        async def worker():
            nonlocal errors
            for i in counter:
                t0 = time.perf_counter()
                first = None
                try:
                    async with s.post(url, data=body, headers=headers) as r:
                        buf = bytearray()
                        async for chunk in r.content.iter_any():
                            if first is None:
                                first = time.perf_counter()
                            buf += chunk
                        t1 = time.perf_counter()
                        ok = (r.status == 200 and b"data: [DONE]" in buf
                              and r.headers.get("content-type", "").startswith("text/event-stream"))
                        if not ok and len(bad) < 3:
                            bad.append(f"{r.status} {r.headers.get('content-type')} {bytes(buf[:200])!r}")
                except Exception as e:  # noqa: BLE001 - counted and reported
                    ok = False
                    if len(bad) < 3:
                        bad.append(repr(e))
                if i < warmup:
                    continue
                if not ok or first is None:
                    errors += 1
                    continue
                ttfb.append((first - t0) * 1e6)
                ttlb.append((t1 - t0) * 1e6)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        wall = time.perf_counter() - start

    ttfb.sort()
    ttlb.sort()
    out = {
        "requests": n, "ok": len(ttfb), "errors": errors, "concurrency": conc,
        "rps": round((warmup + n) / wall, 1),
        "ttfb_p50_us": r(pct(ttfb, 50)), "ttfb_p99_us": r(pct(ttfb, 99)),
        "ttlb_p50_us": r(pct(ttlb, 50)), "ttlb_p99_us": r(pct(ttlb, 99)),
        "bad_samples": bad,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    url, body_file, n, conc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    warmup = int(sys.argv[5]) if len(sys.argv) > 5 else 200
    with open(body_file, "rb") as f:
        body = f.read()
    asyncio.run(main(url, body, n, conc, warmup))
