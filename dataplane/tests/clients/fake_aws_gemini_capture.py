#!/usr/bin/env python3
"""Fake Bedrock CompiledConfig + Gemini API upstream that records every request it gets.

Stdlib only. Used to capture what boto3 and google-genai send, and as a stand-in
upstream in integration tests. It answers from the replay fixtures in
../fixtures/upstream/{bedrock,gemini}/ (so boto3 and google-genai decoding those files is
tested every time this runs) and imports the one event-stream encoder from
../fixtures/upstream/bedrock/make_eventstream.py.

    python3 fake_aws_gemini_capture.py [--host 127.0.0.1] [--port 0]
        [--record FILE.jsonl] [--port-file FILE] [--fixtures DIR]
        [--aws-credentials AKID:SECRET ...] [--verbose]

* Binds 127.0.0.1 (default) on --port (0 = a free port); prints `PORT <n>` on stdout
  and, with --port-file, writes the port there.
* Every request is appended to --record (JSON Lines) as
  {"ts", "method", "path", "headers", "body", "body_raw" | "body_base64", "body_bytes", "sigv4"?}
  `path` is the raw request target (query string and percent-encoding as sent); header
  names keep the client's case; a JSON body is stored parsed ("body") and as the exact
  text sent ("body_raw", needed to re-check a signature), anything else base64.
  `sigv4` (only for `Authorization: AWS4-HMAC-SHA256 ...`) holds the parsed credential
  scope and, when the access key is one of --aws-credentials (default
  AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY), whether the signature verifies
  with the canonical URI built the botocore way (the path as sent, URI-encoded once
  more: `%3A` -> `%253A`) and with the path exactly as sent.

Bedrock (any prefix before /model/, e.g. /v1/bedrock/model/...):
  POST .../model/{id}/invoke                       invoke_anthropic.json (+ X-Amzn-Bedrock-*-Token-Count headers)
  POST .../model/{id}/invoke-with-response-stream  invoke_anthropic_stream.bin
  POST .../model/{id}/converse                     converse.json, or converse_tool_use.json when toolConfig is set
  POST .../model/{id}/converse-stream              converse_stream.bin, converse_stream_tool_use.bin with toolConfig,
                                                   converse_stream_error.bin when the model id contains "stream-error"
  POST .../model/{id}/count-tokens                 {"inputTokens": 42}
  A model id containing "error-validation" gets 400 error_validation.json with
  x-amzn-ErrorType: ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/
  Streams are sent chunked, one event-stream frame per HTTP chunk.

Gemini (any prefix before /v1beta|/v1|/v1alpha, e.g. /v1/gemini/v1beta/...):
  POST .../models/{m}:generateContent        generate_content.json, or generate_content_function_call.json
                                             when tools are declared and the last turn is not a functionResponse
  POST .../models/{m}:streamGenerateContent  stream_generate_content(.sse|_function_call.sse) with ?alt=sse,
                                             the same records as a JSON array without it
  POST .../models/{m}:countTokens            count_tokens.json
  A model containing "error-invalid-argument" gets 400 error_invalid_argument.json.

Anything else: 404 {"message": "fake: no route"}.
"""

import argparse
import base64
import hashlib
import hmac
import importlib.util
import json
import os
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, unquote, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FIXTURES = os.path.normpath(os.path.join(HERE, "..", "fixtures", "upstream"))
DEFAULT_CREDS = "AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

BEDROCK_RE = re.compile(
    r"^(?P<prefix>.*)/model/(?P<model>[^/]+)/"
    r"(?P<op>invoke|invoke-with-response-stream|converse|converse-stream|count-tokens)$")
GEMINI_RE = re.compile(
    r"^(?P<prefix>.*)/(?P<ver>v1beta|v1|v1alpha)/models/(?P<model>[^/:]+)"
    r":(?P<op>generateContent|streamGenerateContent|countTokens)$")

VALIDATION_ERROR_TYPE = "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"

_record_lock = threading.Lock()


def _load_eventstream(fixtures_dir):
    path = os.path.join(fixtures_dir, "bedrock", "make_eventstream.py")
    sys.dont_write_bytecode = True  # keep __pycache__ out of the fixtures folder
    spec = importlib.util.spec_from_file_location("make_eventstream", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------------- SigV4 check

def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def parse_sigv4_authorization(value):
    """'AWS4-HMAC-SHA256 Credential=AKID/20261126/us-east-1/bedrock/aws4_request,
    SignedHeaders=a;b, Signature=hex' -> dict, or None."""
    if not value or not value.startswith("AWS4-HMAC-SHA256 "):
        return None
    out = {}
    for part in value[len("AWS4-HMAC-SHA256 "):].split(","):
        k, _, v = part.strip().partition("=")
        out[k] = v
    try:
        akid, date, region, service, term = out["Credential"].split("/")
    except (KeyError, ValueError):
        return None
    return {"access_key": akid, "date": date, "region": region, "service": service,
            "terminator": term, "signed_headers": out.get("SignedHeaders", "").split(";"),
            "signature": out.get("Signature", "")}


def canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    enc = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join("%s=%s" % kv for kv in enc)


def sigv4_expected(method, raw_path, headers_lower, body, auth, secret, canonical_uri):
    split = urlsplit(raw_path)
    signed = auth["signed_headers"]
    canon_headers = "".join(
        "%s:%s\n" % (h, " ".join((headers_lower.get(h) or "").split())) for h in signed)
    payload_hash = headers_lower.get("x-amz-content-sha256") or _sha256_hex(body)
    creq = "\n".join([method, canonical_uri, canonical_query(split.query), canon_headers,
                      ";".join(signed), payload_hash])
    amz_date = headers_lower.get("x-amz-date", "")
    scope = "/".join([auth["date"], auth["region"], auth["service"], "aws4_request"])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, _sha256_hex(creq.encode())])
    k = _hmac(("AWS4" + secret).encode(), auth["date"])
    k = _hmac(k, auth["region"])
    k = _hmac(k, auth["service"])
    k = _hmac(k, "aws4_request")
    return hmac.new(k, sts.encode(), hashlib.sha256).hexdigest(), creq


def sigv4_report(method, raw_path, headers_lower, body, creds):
    auth = parse_sigv4_authorization(headers_lower.get("authorization"))
    if auth is None:
        return None
    rep = {k: auth[k] for k in ("access_key", "date", "region", "service", "signed_headers")}
    secret = creds.get(auth["access_key"])
    path = urlsplit(raw_path).path
    rep["canonical_uri_botocore"] = quote(path, safe="/~")
    if secret is None:
        rep["verified"] = None
        return rep
    double, creq = sigv4_expected(method, raw_path, headers_lower, body, auth, secret,
                                  quote(path, safe="/~"))
    single, _ = sigv4_expected(method, raw_path, headers_lower, body, auth, secret, path)
    decoded, _ = sigv4_expected(method, raw_path, headers_lower, body, auth, secret,
                                quote(unquote(path), safe="/~"))
    rep["verified_double_encoded"] = hmac.compare_digest(double, auth["signature"])
    rep["verified_path_as_sent"] = hmac.compare_digest(single, auth["signature"])
    rep["verified_decoded_then_encoded_once"] = hmac.compare_digest(decoded, auth["signature"])
    rep["verified"] = (rep["verified_double_encoded"] or rep["verified_path_as_sent"]
                       or rep["verified_decoded_then_encoded_once"])
    if rep["verified_double_encoded"]:
        rep["canonical_request"] = creq
    return rep


# ---------------------------------------------------------------------- handler

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-aws-gemini/1.0"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    # -------------------------------------------------------------- io helpers
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
                    while True:
                        t = self.rfile.readline()
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _record(self, raw):
        headers = {}
        for k, v in self.headers.items():
            if k in headers:
                if not isinstance(headers[k], list):
                    headers[k] = [headers[k]]
                headers[k].append(v)
            else:
                headers[k] = v
        entry = {"ts": time.time(), "method": self.command, "path": self.path,
                 "http_version": self.request_version, "headers": headers}
        body = None
        if raw:
            try:
                body = json.loads(raw)
                entry["body"] = body
                entry["body_raw"] = raw.decode("utf-8")
            except ValueError:
                entry["body_base64"] = base64.b64encode(raw).decode("ascii")
        else:
            entry["body"] = None
        entry["body_bytes"] = len(raw)
        lower = {k.lower(): v for k, v in self.headers.items()}
        rep = sigv4_report(self.command, self.path, lower, raw, self.server.creds)
        if rep is not None:
            entry["sigv4"] = rep
        if self.server.record_path:
            with _record_lock:
                with open(self.server.record_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry) + "\n")
        return body

    def _fixture(self, *parts):
        with open(os.path.join(self.server.fixtures, *parts), "rb") as f:
            return f.read()

    def _send_bytes(self, status, data, content_type, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _send_chunked(self, status, pieces, content_type, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        for p in pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -------------------------------------------------------------- verbs
    def do_POST(self):
        raw = self._read_body()
        body = self._record(raw)
        if not isinstance(body, dict):
            body = {}
        path = urlsplit(self.path).path
        m = BEDROCK_RE.match(path)
        if m:
            return self._bedrock(unquote(m.group("model")), m.group("op"), body)
        m = GEMINI_RE.match(path)
        if m:
            return self._gemini(unquote(m.group("model")), m.group("op"), body)
        self._send_bytes(404, b'{"message":"fake: no route"}', "application/json")

    def do_GET(self):
        self._record(b"")
        self._send_bytes(404, b'{"message":"fake: no route"}', "application/json")

    # -------------------------------------------------------------- bedrock
    def _bedrock(self, model, op, body):
        rid = {"x-amzn-RequestId": str(uuid.uuid4())}
        if "error-validation" in model:
            return self._send_bytes(
                400, self._fixture("bedrock", "error_validation.json"), "application/json",
                dict(rid, **{"x-amzn-ErrorType": VALIDATION_ERROR_TYPE}))
        es = self.server.eventstream
        if op == "invoke":
            data = self._fixture("bedrock", "invoke_anthropic.json")
            usage = json.loads(data)["usage"]
            return self._send_bytes(200, data, "application/json", dict(rid, **{
                "X-Amzn-Bedrock-Invocation-Latency": "1053",
                "X-Amzn-Bedrock-Output-Token-Count": str(usage["output_tokens"]),
                "X-Amzn-Bedrock-Input-Token-Count": str(usage["input_tokens"]),
                "X-Amzn-Bedrock-Cache-Read-Input-Token-Count": str(usage["cache_read_input_tokens"]),
                "X-Amzn-Bedrock-Cache-Write-Input-Token-Count": str(usage["cache_creation_input_tokens"]),
            }))
        if op == "invoke-with-response-stream":
            frames = es.split_messages(self._fixture("bedrock", "invoke_anthropic_stream.bin"))
            return self._send_chunked(200, frames, "application/vnd.amazon.eventstream",
                                      dict(rid, **{"X-Amzn-Bedrock-Content-Type": "application/json"}))
        if op == "converse":
            name = "converse_tool_use.json" if body.get("toolConfig") else "converse.json"
            return self._send_bytes(200, self._fixture("bedrock", name), "application/json", rid)
        if op == "converse-stream":
            if "stream-error" in model:
                name = "converse_stream_error.bin"
            elif body.get("toolConfig"):
                name = "converse_stream_tool_use.bin"
            else:
                name = "converse_stream.bin"
            frames = es.split_messages(self._fixture("bedrock", name))
            return self._send_chunked(200, frames, "application/vnd.amazon.eventstream", rid)
        if op == "count-tokens":
            return self._send_bytes(200, b'{"inputTokens":42}', "application/json", rid)
        self._send_bytes(404, b'{"message":"fake: no route"}', "application/json")

    # -------------------------------------------------------------- gemini
    @staticmethod
    def _gemini_wants_call(body):
        if not body.get("tools"):
            return False
        contents = body.get("contents") or []
        last = contents[-1] if contents else {}
        return not any("functionResponse" in p for p in (last.get("parts") or []))

    def _gemini(self, model, op, body):
        ctype_json = "application/json; charset=UTF-8"
        if "error-invalid-argument" in model:
            return self._send_bytes(400, self._fixture("gemini", "error_invalid_argument.json"),
                                    ctype_json)
        call = self._gemini_wants_call(body)
        if op == "generateContent":
            name = "generate_content_function_call.json" if call else "generate_content.json"
            return self._send_bytes(200, self._fixture("gemini", name), ctype_json)
        if op == "countTokens":
            return self._send_bytes(200, self._fixture("gemini", "count_tokens.json"), ctype_json)
        if op == "streamGenerateContent":
            name = ("stream_generate_content_function_call.sse" if call
                    else "stream_generate_content.sse")
            raw = self._fixture("gemini", name)
            frames = [f + b"\r\n\r\n" for f in raw.split(b"\r\n\r\n") if f]
            query = dict(parse_qsl(urlsplit(self.path).query))
            if query.get("alt") == "sse":
                return self._send_chunked(200, frames, "text/event-stream")
            # Without alt=sse Google streams one JSON array of the same records.
            records = [json.loads(f[len(b"data: "):].strip()) for f in frames]
            arr = ("[" + ",\r\n".join(json.dumps(r, indent=2) for r in records) + "]").encode()
            return self._send_chunked(200, [arr], ctype_json)
        self._send_bytes(404, b'{"message":"fake: no route"}', "application/json")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--record", default=None, help="append requests here (JSON Lines)")
    ap.add_argument("--port-file", default=None)
    ap.add_argument("--fixtures", default=DEFAULT_FIXTURES,
                    help="directory holding bedrock/ and gemini/ (default: %(default)s)")
    ap.add_argument("--aws-credentials", action="append", default=None,
                    help="AKID:SECRET used to verify SigV4 (repeatable; default %s)" % DEFAULT_CREDS)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    srv.daemon_threads = True
    srv.record_path = args.record
    srv.verbose = args.verbose
    srv.fixtures = args.fixtures
    srv.eventstream = _load_eventstream(args.fixtures)
    srv.creds = dict(c.split(":", 1) for c in (args.aws_credentials or [DEFAULT_CREDS]))
    port = srv.server_address[1]
    if args.port_file:
        with open(args.port_file, "w") as f:
            f.write(str(port))
    sys.stdout.write("PORT %d\n" % port)
    sys.stdout.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
