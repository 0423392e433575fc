#!/usr/bin/env python3
"""Drive a Bedrock CompiledConfig endpoint with the official `boto3` SDK.

    python3 boto3_bedrock.py ENDPOINT_URL ACCESS_KEY_ID SECRET_ACCESS_KEY MODEL_ID
                             [--only invoke_model,converse,...] [--timeout SECONDS]
                             [--session-token TOKEN] [--bearer-token TOKEN]
                             [--region us-east-1]

ENDPOINT_URL is what the client gets as endpoint_url, e.g.
http://127.0.0.1:8090/v1/bedrock (boto3 appends /model/{modelId}/{operation}, with the
model id percent-encoded: `:` -> `%3A`). Requests are signed with SigV4 (service
`bedrock`, the given region) using the static credentials; no profile, no env
credentials. With --bearer-token the script sets AWS_BEARER_TOKEN_BEDROCK and botocore
sends `Authorization: Bearer TOKEN` instead of signing (Bedrock API keys). Without it,
AWS_BEARER_TOKEN_BEDROCK is removed from the environment so it cannot switch the auth
silently. Retries are off (one attempt). Cases, in order:

  invoke_model                      InvokeModel, Anthropic Messages body (anthropic_version bedrock-2023-05-31)
  invoke_model_with_response_stream the same body; every `chunk` event's bytes decoded as JSON
  converse                          Converse: system + one user turn, inferenceConfig
  converse_stream                   ConverseStream: contentBlockDelta text + metadata usage
  converse_tool_use                 Converse with toolConfig (get_weather), toolChoice forcing it

Each case prints one JSON object on its own line to stdout:
  {"case", "text", "stop_reason", "usage", ...}   (converse_tool_use adds "tool_calls",
  the stream cases add "events": the event types in order)
On any exception the case prints {"case", "error", "error_code", "status_code"} and the
script exits 1 (traceback on stderr).
"""

import argparse
import json
import os
import sys
import traceback

PROMPT = "Say hello in one short sentence."
SYSTEM = "You are a terse assistant."
TOOL_PROMPT = "What is the weather in Paris right now? Use the tool."
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
}


def emit(obj):
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def anthropic_body(max_tokens=64):
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": max_tokens,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": PROMPT}],
    }


def case_invoke_model(client, model_id):
    r = client.invoke_model(modelId=model_id, body=json.dumps(anthropic_body()),
                            contentType="application/json", accept="application/json")
    body = json.loads(r["body"].read())
    text = "".join(b.get("text", "") for b in body.get("content", []) if b.get("type") == "text")
    if not text:
        raise AssertionError("invoke_model: no text block")
    headers = r["ResponseMetadata"]["HTTPHeaders"]
    return {"text": text, "stop_reason": body.get("stop_reason"), "usage": body.get("usage"),
            "content_type": r.get("contentType"),
            "token_headers": {k: v for k, v in headers.items()
                              if k.startswith("x-amzn-bedrock-")}}


def case_invoke_model_with_response_stream(client, model_id):
    r = client.invoke_model_with_response_stream(
        modelId=model_id, body=json.dumps(anthropic_body()),
        contentType="application/json", accept="application/json")
    parts, stop, usage, metrics, kinds = [], None, {}, None, []
    for ev in r["body"]:
        if "chunk" not in ev:
            raise AssertionError("invoke stream: unexpected event %r" % list(ev))
        data = json.loads(ev["chunk"]["bytes"])
        kinds.append(data.get("type"))
        t = data.get("type")
        if t == "message_start":
            usage.update(data["message"].get("usage") or {})
        elif t == "content_block_delta" and data["delta"].get("type") == "text_delta":
            parts.append(data["delta"]["text"])
        elif t == "message_delta":
            stop = data["delta"].get("stop_reason")
            usage.update(data.get("usage") or {})
        elif t == "message_stop":
            metrics = data.get("amazon-bedrock-invocationMetrics")
    text = "".join(parts)
    if not text:
        raise AssertionError("invoke stream: no text deltas")
    if metrics is None:
        raise AssertionError("invoke stream: no amazon-bedrock-invocationMetrics on message_stop")
    usage["amazon-bedrock-invocationMetrics"] = metrics
    return {"text": text, "stop_reason": stop, "usage": usage, "events": kinds,
            "content_type": r.get("contentType")}


def converse_kwargs(model_id):
    return {
        "modelId": model_id,
        "system": [{"text": SYSTEM}],
        "messages": [{"role": "user", "content": [{"text": PROMPT}]}],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.5},
    }


def case_converse(client, model_id):
    r = client.converse(**converse_kwargs(model_id))
    content = r["output"]["message"]["content"]
    text = "".join(b.get("text", "") for b in content)
    if not text:
        raise AssertionError("converse: no text")
    return {"text": text, "stop_reason": r["stopReason"], "usage": r["usage"],
            "metrics": r.get("metrics")}


def case_converse_stream(client, model_id):
    r = client.converse_stream(**converse_kwargs(model_id))
    parts, stop, usage, metrics, kinds = [], None, None, None, []
    for ev in r["stream"]:
        kind = next(iter(ev))
        kinds.append(kind)
        if kind == "contentBlockDelta":
            parts.append(ev[kind]["delta"].get("text", ""))
        elif kind == "messageStop":
            stop = ev[kind]["stopReason"]
        elif kind == "metadata":
            usage = ev[kind].get("usage")
            metrics = ev[kind].get("metrics")
    text = "".join(parts)
    if not text:
        raise AssertionError("converse_stream: no contentBlockDelta text")
    if usage is None:
        raise AssertionError("converse_stream: no metadata usage")
    return {"text": text, "stop_reason": stop, "usage": usage, "metrics": metrics,
            "events": kinds}


def case_converse_tool_use(client, model_id):
    r = client.converse(
        modelId=model_id,
        messages=[{"role": "user", "content": [{"text": TOOL_PROMPT}]}],
        inferenceConfig={"maxTokens": 256},
        toolConfig={
            "tools": [{"toolSpec": {"name": "get_weather",
                                    "description": "Get the current weather for a city.",
                                    "inputSchema": {"json": WEATHER_SCHEMA}}}],
            "toolChoice": {"tool": {"name": "get_weather"}},
        })
    content = r["output"]["message"]["content"]
    calls = [b["toolUse"] for b in content if "toolUse" in b]
    if not calls:
        raise AssertionError("converse_tool_use: no toolUse block")
    if calls[0]["name"] != "get_weather" or not isinstance(calls[0]["input"], dict):
        raise AssertionError("converse_tool_use: bad toolUse %r" % calls[0])
    return {"text": "".join(b.get("text", "") for b in content),
            "stop_reason": r["stopReason"], "usage": r["usage"],
            "tool_calls": [{"id": c["toolUseId"], "name": c["name"], "input": c["input"]}
                           for c in calls]}


CASES = [
    ("invoke_model", case_invoke_model),
    ("invoke_model_with_response_stream", case_invoke_model_with_response_stream),
    ("converse", case_converse),
    ("converse_stream", case_converse_stream),
    ("converse_tool_use", case_converse_tool_use),
]


def main():
    ap = argparse.ArgumentParser(description="boto3 bedrock-runtime client cases")
    ap.add_argument("endpoint_url")
    ap.add_argument("access_key_id")
    ap.add_argument("secret_access_key")
    ap.add_argument("model_id")
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--session-token", default=None)
    ap.add_argument("--bearer-token", default=None,
                    help="send Authorization: Bearer TOKEN (via AWS_BEARER_TOKEN_BEDROCK)")
    args = ap.parse_args()
    only = [c for c in args.only.split(",") if c]
    unknown = set(only) - {n for n, _ in CASES}
    if unknown:
        ap.error("unknown case(s): %s" % ",".join(sorted(unknown)))

    # botocore prefers a bearer token from the environment over SigV4 for bedrock
    # whenever AWS_BEARER_TOKEN_BEDROCK is set, even with explicit keys in code.
    if args.bearer_token:
        os.environ["AWS_BEARER_TOKEN_BEDROCK"] = args.bearer_token
    else:
        os.environ.pop("AWS_BEARER_TOKEN_BEDROCK", None)
    for var in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        os.environ.pop(var, None)

    import boto3
    import botocore.exceptions
    from botocore.config import Config

    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=args.endpoint_url,
        region_name=args.region,
        aws_access_key_id=args.access_key_id,
        aws_secret_access_key=args.secret_access_key,
        aws_session_token=args.session_token,
        config=Config(retries={"max_attempts": 1, "mode": "standard"},
                      connect_timeout=min(args.timeout, 10), read_timeout=args.timeout),
    )
    for name, fn in CASES:
        if only and name not in only:
            continue
        try:
            out = fn(client, args.model_id)
        except Exception as e:  # noqa: BLE001 - report every failure the same way
            err = {"case": name, "error": "%s: %s" % (type(e).__name__, e)}
            if isinstance(e, botocore.exceptions.ClientError):
                err["error_code"] = e.response.get("Error", {}).get("Code")
                err["status_code"] = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            emit(err)
            traceback.print_exc(file=sys.stderr)
            sys.exit(1)
        emit(dict({"case": name}, **out))


if __name__ == "__main__":
    main()
