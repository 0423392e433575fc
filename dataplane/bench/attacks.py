#!/usr/bin/env python3
"""Memory under the red-team pass's attacks, measured on the release build.

Each attack runs against a fresh gateway process (so its peak RSS is its own), all on
127.0.0.1, bounded in count and time, stdlib only:

  1. bodies before auth:  100 connections each announcing 32 MiB - 5 bytes and sending
     it slowly: (a) signed SigV4 by a stranger, (b) with a valid key, (c) with a key at
     its rate limit;
  2. label cardinality:   100,000 calls, each with its own model name, from a key
     limited to 10 requests a minute; then one /metrics scrape;
  9. huge answers:        a 1 GiB JSON answer (with its length declared, then chunked)
                          and a 1 GiB SSE event with no blank line.

Usage: python3 dataplane/bench/attacks.py [path/to/ai-gateway]
(default: $CARGO_TARGET_DIR or target/, release build). Prints a Markdown table.
"""

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

MIB = 1024 * 1024
KEY = "gw_attack_key_valid"
LIMITED = "gw_attack_key_limited"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the fake upstream: an OpenAI-compatible server, huge on request -----------------

CHAT = json.dumps({
    "id": "c1", "object": "chat.completion", "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}).encode()


async def upstream_conn(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length) if length else b""
            huge = b"huge-" in body
            if b"huge-chunked" in body:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"transfer-encoding: chunked\r\n\r\n")
                chunk = b" " * MIB
                frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
                for _ in range(1024):
                    writer.write(frame)
                    await writer.drain()
            elif b"huge-json" in body:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n{\"pad\": \"" % (1024 * MIB))
                chunk = b" " * MIB
                for _ in range(1024):
                    writer.write(chunk)
                    await writer.drain()
            elif b"huge-event" in body:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                             b"transfer-encoding: chunked\r\n\r\n")
                chunk = b" " * MIB
                frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
                writer.write(b"%x\r\ndata: {\"choices\": [\r\n" % len(b"data: {\"choices\": ["))
                for _ in range(1024):
                    writer.write(frame)
                    await writer.drain()
            else:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n" % len(CHAT) + CHAT)
                await writer.drain()
            if huge:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


# --- the gateway -----------------------------------------------------------------------

def config(upstream_port, audit_path):
    sha = lambda k: hashlib.sha256(k.encode()).hexdigest()
    return f"""
providers:
  fake: {{ type: openai-compatible, base_url: "http://127.0.0.1:{upstream_port}/v1" }}
  bedrock: {{ type: bedrock, base_url: "http://127.0.0.1:{upstream_port}", region: us-east-1,
             access_key_id: AKID, secret_access_key: "bedrock-secret-0123456789" }}
routes:
  - {{ models: ["*"], provider: fake }}
auth:
  mode: keys
  keys:
    - {{ id: valid, sha256: "{sha(KEY)}", user: valid }}
    - {{ id: limited, sha256: "{sha(LIMITED)}", user: limited }}
rate_limits:
  per_user:
    valid: {{ requests_per_minute: 1000000, concurrent_requests: 1000 }}
    limited: {{ requests_per_minute: 10 }}
audit: {{ sink: file, path: "{audit_path}" }}
"""


class Gateway:
    def __init__(self, binary, upstream_port, workdir):
        self.port = free_port()
        self.admin = free_port()
        cfg = os.path.join(workdir, f"gw-{self.port}.yaml")
        with open(cfg, "w") as f:
            f.write(config(upstream_port, os.path.join(workdir, f"audit-{self.port}.jsonl")))
        self.proc = subprocess.Popen(
            [binary, "--config", cfg, "--listen", f"127.0.0.1:{self.port}",
             "--admin-listen", f"127.0.0.1:{self.admin}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the gateway did not start")

    def rss_mb(self, field):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


async def request(port, head, body=b"", read_limit=64 * 1024):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + body)
    await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(read_limit), 30)
    except asyncio.TimeoutError:
        data = b""
    writer.close()
    return data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "none"


async def slow_upload(port, headers, seconds=8):
    """Announces 32 MiB - 5 bytes and sends 1 MiB every quarter second until answered."""
    length = 32 * MIB - 5
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST " + headers[0] + b" HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
                 + b"".join(h + b"\r\n" for h in headers[1:])
                 + b"content-length: %d\r\n\r\n{\"model\": \"m\", \"pad\": \"" % length)
    sent, status = 0, "none"
    deadline = time.monotonic() + seconds
    chunk = b" " * MIB
    try:
        while time.monotonic() < deadline and sent + MIB < length:
            writer.write(chunk)
            await writer.drain()
            sent += MIB
            try:
                data = await asyncio.wait_for(reader.read(4096), 0.25)
                if data:
                    status = data.split(b" ", 2)[1].decode()
                    break
            except asyncio.TimeoutError:
                pass
    except ConnectionError:
        status = status if status != "none" else "reset"
    writer.close()
    return status


def amz_date():
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()).encode()


async def attack_bodies(gw, kind):
    if kind == "stranger":
        headers = [b"/v1/bedrock/model/us.anthropic.claude-sonnet-4-5-v1:0/invoke",
                   b"authorization: AWS4-HMAC-SHA256 Credential=AKIASTRANGER/20261203/us-east-1/"
                   b"bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
                   b"x-amz-date: " + amz_date()]
    else:
        key = KEY if kind == "valid" else LIMITED
        headers = [b"/v1/chat/completions", b"authorization: Bearer " + key.encode()]
        if kind == "limited":  # spend its 10 requests first
            for _ in range(10):
                await request(gw.port, small_chat(LIMITED, "m"))
    statuses = await asyncio.gather(*(slow_upload(gw.port, headers) for _ in range(100)))
    return summarize(statuses)


def small_chat(key, model):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer "
            + key.encode() + b"\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
            % len(body) + body)


async def attack_names(gw, calls=100_000, connections=64):
    statuses = {}

    async def worker(first):
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        for n in range(first, calls, connections):
            writer.write(small_chat(LIMITED, f"gpt-{n}-{'x' * 40}"))
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1].decode()
            length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n")
                          if l.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    await asyncio.gather(*(worker(i) for i in range(connections)))
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.admin)
    writer.write(b"GET /metrics HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n")
    scrape = await reader.read()
    writer.close()
    took = time.monotonic() - started
    lines = scrape.count(b"\n")
    return (", ".join(f"{n}x {s}" for s, n in sorted(statuses.items()))
            + f"; /metrics {len(scrape) / 1024:.0f} KiB, {lines} lines, scraped in {took * 1000:.0f} ms")


async def attack_answers(gw):
    plain = await request(gw.port, small_chat(KEY, "huge-json"))
    chunked = await request(gw.port, small_chat(KEY, "huge-chunked"))
    body = json.dumps({"model": "huge-event", "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer "
            + KEY.encode() + b"\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
            % len(body))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(head + body)
    await writer.drain()
    received = 0
    tail = b""
    try:
        while True:
            data = await asyncio.wait_for(reader.read(MIB), 30)
            if not data:
                break
            received += len(data)
            tail = (tail + data)[-400:]
            if b"0\r\n\r\n" in tail or b"larger than" in tail:
                break
    except asyncio.TimeoutError:
        pass
    writer.close()
    cut = "error tail" if b"larger than" in tail else "no error tail"
    return (f"JSON answer: {plain} (declared length), {chunked} (chunked); "
            f"SSE event: {received / MIB:.1f} MiB passed on, {cut}")


def summarize(statuses):
    counts = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{n}x {s}" for s, n in sorted(counts.items()))


async def main():
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(target, "release", "ai-gateway")
    upstream_port = free_port()
    server = await asyncio.start_server(upstream_conn, "127.0.0.1", upstream_port)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        attacks = [
            ("1a: 100 x 32 MiB bodies, SigV4 stranger", lambda gw: attack_bodies(gw, "stranger")),
            ("1b: 100 x 32 MiB bodies, valid key", lambda gw: attack_bodies(gw, "valid")),
            ("1c: 100 x 32 MiB bodies, key at its limit", lambda gw: attack_bodies(gw, "limited")),
            ("2: 100,000 distinct model names", attack_names),
            ("9: 1 GiB JSON answers, 1 GiB SSE event", attack_answers),
        ]
        for name, attack in attacks:
            gw = Gateway(binary, upstream_port, workdir)
            idle = gw.rss_mb("VmRSS")
            outcome = await asyncio.wait_for(attack(gw), 300)
            rows.append((name, idle, gw.rss_mb("VmHWM"), gw.rss_mb("VmRSS"), outcome))
            gw.stop()
    server.close()
    print("| attack | RSS idle (MB) | peak RSS (MB) | RSS after (MB) | outcome |")
    print("|---|---:|---:|---:|---|")
    for name, idle, peak, after, outcome in rows:
        print(f"| {name} | {idle:.0f} | {peak:.0f} | {after:.0f} | {outcome} |")


if __name__ == "__main__":
    asyncio.run(main())
