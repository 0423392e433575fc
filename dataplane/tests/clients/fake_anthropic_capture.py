#!/usr/bin/env python3
"""Fake Anthropic (and OpenAI) upstream that records every request it gets.

Stdlib only. Used to capture what real clients (Claude Code CLI, the Python SDKs)
send, and as a stand-in upstream in integration tests.

    python3 fake_anthropic_capture.py [--host 127.0.0.1] [--port 0]
                                      [--record FILE.jsonl] [--port-file FILE]

* Binds 127.0.0.1 (default) on --port (0 = a free port). The bound port is printed
  on stdout as `PORT <n>` and, with --port-file, written to that file.
* Every request is appended to --record (JSON Lines) as
  {"ts", "method", "path", "headers": {...}, "body": <json|str|null>, "body_bytes": n}
  `path` includes the query string; header names keep the case the client sent;
  a repeated header is recorded as a list.
* HEAD / GET on any path: 200 (GET .../models returns a small model list).
* POST .../v1/messages (any query): Anthropic Messages API. SSE stream when the body
  has "stream": true, JSON message otherwise. If tool_choice forces a tool
  ({"type": "tool"} or {"type": "any"}) the reply is a tool_use block for that tool
  (the first tool for "any") with stop_reason "tool_use". The same happens when the
  last user turn (not a tool_result turn) contains `[[tool_use NAME {"json": 1}]]`,
  e.g. `claude -p '[[tool_use Bash {"command": "echo hi"}]]' --allowedTools Bash`.
* POST .../count_tokens: {"input_tokens": 42}.
* POST .../chat/completions: OpenAI Chat Completions, SSE when "stream": true
  (usage chunk when stream_options.include_usage), a tool call when tool_choice
  forces a function (or is "required").
* Any other POST: 200 {}.

Request bodies sent with Transfer-Encoding: chunked and Content-Encoding gzip/deflate
are decoded before recording.
"""

import argparse
import gzip
import json
import re
import sys
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TEXT = "Hello from fake"
INPUT_TOKENS = 12
OUTPUT_TOKENS = 5
COUNT_TOKENS = 42

TOOL_MARKER = re.compile(r"\[\[tool_use (\w+) (\{.*?\})\]\]", re.S)

_record_lock = threading.Lock()


def _tool_args_for(tool_schema):
    """Build a plausible arguments object for a tool's JSON schema."""
    props = (tool_schema or {}).get("properties") or {}
    args = {}
    for name, spec in props.items():
        t = (spec or {}).get("type")
        if "enum" in (spec or {}):
            args[name] = spec["enum"][0]
        elif t == "string":
            args[name] = "Paris" if "city" in name or "location" in name else "x"
        elif t in ("number", "integer"):
            args[name] = 1
        elif t == "boolean":
            args[name] = True
        elif t == "array":
            args[name] = []
        elif t == "object":
            args[name] = {}
    return args


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Replies go out in several small writes; Nagle would hold each for the peer's ACK.
    disable_nagle_algorithm = True
    server_version = "fake-upstream/1.0"
    record_path = None

    # ------------------------------------------------------------ helpers
    def log_message(self, fmt, *args):  # keep stderr quiet unless asked
        if self.server.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline()
                if not line:
                    break
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until blank line
                    while True:
                        t = self.rfile.readline()
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after chunk
            raw = b"".join(chunks)
        else:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
        ce = (self.headers.get("Content-Encoding") or "").lower()
        try:
            if ce == "gzip":
                raw = gzip.decompress(raw)
            elif ce == "deflate":
                raw = zlib.decompress(raw)
        except Exception:
            pass
        return raw

    def _record(self, raw):
        headers = {}
        for k, v in self.headers.items():
            if k in headers:
                if not isinstance(headers[k], list):
                    headers[k] = [headers[k]]
                headers[k].append(v)
            else:
                headers[k] = v
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except Exception:
                body = raw.decode("utf-8", "replace")
        entry = {
            "ts": time.time(),
            "method": self.command,
            "path": self.path,
            "http_version": self.request_version,
            "headers": headers,
            "body": body,
            "body_bytes": len(raw),
        }
        if self.server.record_path:
            with _record_lock:
                with open(self.server.record_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry) + "\n")
        return body

    def _send_json(self, status, obj, extra_headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_fake_" + uuid.uuid4().hex[:16])
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _start_sse(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", "req_fake_" + uuid.uuid4().hex[:16])
        self.end_headers()

    def _chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _sse_event(self, event, obj):
        self._chunk(("event: %s\ndata: %s\n\n" % (event, json.dumps(obj))).encode())

    def _sse_data(self, payload):
        self._chunk(("data: %s\n\n" % payload).encode())

    # ------------------------------------------------------------ verbs
    def do_HEAD(self):
        self._record(b"")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self._record(b"")
        route = self.path.split("?", 1)[0].rstrip("/")
        if route.endswith("/models"):
            self._send_json(200, {
                "object": "list",
                "data": [{"id": "fake-model", "object": "model", "type": "model",
                          "created": 0, "owned_by": "fake", "display_name": "Fake"}],
                "has_more": False, "first_id": "fake-model", "last_id": "fake-model",
            })
        else:
            self._send_json(200, {"ok": True})

    def do_POST(self):
        raw = self._read_body()
        body = self._record(raw)
        if not isinstance(body, dict):
            body = {}
        route = self.path.split("?", 1)[0].rstrip("/")
        if route.endswith("/count_tokens"):
            self._send_json(200, {"input_tokens": COUNT_TOKENS})
        elif route.endswith("/v1/messages") or route.endswith("/messages"):
            self._anthropic_messages(body)
        elif route.endswith("/chat/completions"):
            self._openai_chat(body)
        else:
            self._send_json(200, {})

    def do_PUT(self):
        self.do_POST()

    # ------------------------------------------------------------ anthropic
    def _anthropic_prompt_tool(self, body):
        """`[[tool_use NAME {json}]]` in the last user turn (that is not itself a
        tool_result turn) makes the reply a tool_use of NAME with that input."""
        users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
        if not users:
            return None
        content = users[-1].get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        if any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content or []):
            return None
        for b in content or []:
            if isinstance(b, dict) and b.get("type") == "text":
                m = TOOL_MARKER.search(b.get("text") or "")
                if m:
                    try:
                        args = json.loads(m.group(2))
                    except ValueError:
                        args = {}
                    return {"name": m.group(1), "input": args}
        return None

    def _anthropic_forced_tool(self, body):
        tools = body.get("tools") or []
        tc = body.get("tool_choice") or {}
        marked = self._anthropic_prompt_tool(body)
        if marked is not None:
            return marked
        if not tools or not isinstance(tc, dict):
            return None
        if tc.get("type") == "tool":
            for t in tools:
                if t.get("name") == tc.get("name"):
                    return t
        if tc.get("type") == "any":
            return tools[0]
        return None

    def _anthropic_messages(self, body):
        model = body.get("model") or "fake-model"
        msg_id = "msg_fake_" + uuid.uuid4().hex[:20]
        tool = self._anthropic_forced_tool(body)
        usage = {
            "input_tokens": INPUT_TOKENS,
            "output_tokens": OUTPUT_TOKENS,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        if tool is not None:
            block = {"type": "tool_use", "id": "toolu_fake_" + uuid.uuid4().hex[:16],
                     "name": tool.get("name"),
                     "input": tool["input"] if "input" in tool
                     else _tool_args_for(tool.get("input_schema"))}
            stop_reason = "tool_use"
        else:
            block = {"type": "text", "text": TEXT}
            stop_reason = "end_turn"

        if not body.get("stream"):
            self._send_json(200, {
                "id": msg_id, "type": "message", "role": "assistant", "model": model,
                "content": [block], "stop_reason": stop_reason,
                "stop_sequence": None, "usage": usage,
            })
            return

        self._start_sse()
        self._sse_event("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": dict(usage, output_tokens=1)}})
        self._sse_event("ping", {"type": "ping"})
        if tool is not None:
            self._sse_event("content_block_start", {
                "type": "content_block_start", "index": 0,
                "content_block": dict(block, input={})})
            self._sse_event("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta",
                          "partial_json": json.dumps(block["input"])}})
        else:
            self._sse_event("content_block_start", {
                "type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}})
            self._sse_event("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": TEXT}})
        self._sse_event("content_block_stop", {"type": "content_block_stop", "index": 0})
        self._sse_event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": OUTPUT_TOKENS}})
        self._sse_event("message_stop", {"type": "message_stop"})
        self._end_chunks()

    # ------------------------------------------------------------ openai
    def _openai_forced_tool(self, body):
        tools = body.get("tools") or []
        tc = body.get("tool_choice")
        if not tools:
            return None
        if tc == "required":
            return tools[0]
        if isinstance(tc, dict) and tc.get("type") == "function":
            name = (tc.get("function") or {}).get("name")
            for t in tools:
                if (t.get("function") or {}).get("name") == name:
                    return t
        return None

    def _openai_chat(self, body):
        model = body.get("model") or "fake-model"
        cid = "chatcmpl-fake" + uuid.uuid4().hex[:16]
        created = int(time.time())
        tool = self._openai_forced_tool(body)
        usage = {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS,
                 "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS}
        tool_call = None
        if tool is not None:
            fn = tool.get("function") or {}
            tool_call = {"id": "call_fake_" + uuid.uuid4().hex[:12], "type": "function",
                         "function": {"name": fn.get("name"),
                                      "arguments": json.dumps(_tool_args_for(fn.get("parameters")))}}
        finish = "tool_calls" if tool_call else "stop"

        if not body.get("stream"):
            message = {"role": "assistant", "content": None if tool_call else TEXT,
                       "refusal": None}
            if tool_call:
                message["tool_calls"] = [tool_call]
            self._send_json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": finish}],
                "usage": usage,
            })
            return

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self._start_sse()

        def chunk(delta, finish_reason=None, usage_obj=None, choices=True):
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created,
                   "model": model,
                   "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                "finish_reason": finish_reason}] if choices else []}
            if include_usage:
                obj["usage"] = usage_obj
            self._sse_data(json.dumps(obj))

        chunk({"role": "assistant", "content": ""})
        if tool_call:
            chunk({"tool_calls": [{"index": 0, "id": tool_call["id"], "type": "function",
                                   "function": {"name": tool_call["function"]["name"],
                                                "arguments": ""}}]})
            chunk({"tool_calls": [{"index": 0, "function": {
                "arguments": tool_call["function"]["arguments"]}}]})
        else:
            chunk({"content": "Hello"})
            chunk({"content": " from fake"})
        chunk({}, finish_reason=finish)
        if include_usage:
            chunk(None, usage_obj=usage, choices=False)
        self._sse_data("[DONE]")
        self._end_chunks()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--record", default=None, help="append requests here (JSON Lines)")
    ap.add_argument("--port-file", default=None)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    srv.daemon_threads = True
    srv.record_path = args.record
    srv.verbose = args.verbose
    port = srv.server_address[1]
    if args.port_file:
        with open(args.port_file, "w") as f:
            f.write(str(port))
    print("PORT %d" % port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
