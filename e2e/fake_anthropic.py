"""A stand-in for api.anthropic.com inside the e2e cluster: POST /v1/messages answers
"pong" in the Messages API's shape (JSON, or SSE events when `stream` is true) with
usage, but only for the provider key the gateway should inject (EXPECTED_API_KEY): a
caller's gateway key arriving here would mean it was forwarded upstream."""

import json
import os
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EXPECTED_API_KEY = os.environ["EXPECTED_API_KEY"]
USAGE = {"input_tokens": 12, "output_tokens": 3,
         "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def dumps(value):
    return json.dumps(value, separators=(",", ":"))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send_json(self, status, value):
        body = dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, kind, message):
        self.send_json(status, {"type": "error", "error": {"type": kind, "message": message}})

    def do_GET(self):
        if self.path == "/healthz":
            self.send_json(200, {"ok": True})
        else:
            self.error(404, "not_found_error", f"no route for GET {self.path}")

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        if self.path.split("?")[0] != "/v1/messages":
            return self.error(404, "not_found_error", f"no route for POST {self.path}")
        if self.headers.get("x-api-key") != EXPECTED_API_KEY:
            return self.error(401, "authentication_error", "invalid x-api-key")
        try:
            request = json.loads(raw)
        except ValueError:
            return self.error(400, "invalid_request_error", "body is not JSON")
        if not request.get("messages") or not request.get("max_tokens"):
            return self.error(400, "invalid_request_error", "messages and max_tokens are required")
        message = {
            "id": "msg_e2e_" + uuid.uuid4().hex[:20],
            "type": "message",
            "role": "assistant",
            "model": request.get("model", "claude-sonnet-4-5"),
            "content": [{"type": "text", "text": "pong"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": USAGE,
        }
        if not request.get("stream"):
            return self.send_json(200, message)
        start = dict(message, content=[], stop_reason=None,
                     usage=dict(USAGE, output_tokens=1))
        events = [
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "pong"}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": USAGE["output_tokens"]}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        body = "".join(f"event: {name}\ndata: {dumps(data)}\n\n" for name, data in events).encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print(f"{self.address_string()} {fmt % args}", flush=True)


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
