#!/usr/bin/env python3
"""Drive an Anthropic Messages endpoint with the official `anthropic` Python SDK.

    python3 anthropic_sdk.py BASE_URL API_KEY MODEL [--only messages_create,...]
                             [--auth default|x-api-key] [--timeout SECONDS]

BASE_URL is what the SDK gets as base_url, e.g. http://127.0.0.1:8090/v1/claude (the
SDK appends /v1/messages and /v1/messages/count_tokens). anthropic 2.x sends the key
as `Authorization: Bearer KEY` (older 0.x SDKs sent `x-api-key`); `--auth x-api-key`
sends only `x-api-key: KEY` instead. Cases, in order:

  messages_create       non-stream messages.create
  messages_stream       messages.stream: text_stream collected + get_final_message() usage
  tool_use              a get_weather tool, tool_choice {"type": "tool"} forcing it
  tool_result_followup  sends the tool_use + a tool_result back, expects text
  count_tokens          messages.count_tokens

Each case prints one JSON object on its own line to stdout:
  {"case", "id", "model", "content", "finish_reason" (= stop_reason), "stop_reason",
   "tool_calls": [...], "usage": {...}}   (count_tokens: {"case", "input_tokens"})
On any exception the case prints {"case", "error", "status_code", "body"} and the
script exits 1 (error also on stderr). The SDK's retries are off (max_retries=0) so a
429/5xx from the gateway surfaces as-is.
"""

import argparse
import json
import sys
import traceback
import warnings

import anthropic
from anthropic import Anthropic

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name, e.g. Paris"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city"],
    },
}
PROMPT = "Say hello in one short sentence."
TOOL_PROMPT = "What is the weather in Paris right now? Use the tool."
SYSTEM = "You are a terse assistant."


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def usage_dict(usage):
    if usage is None:
        return None
    if hasattr(usage, "model_dump"):
        return usage.model_dump(exclude_none=True)
    return dict(usage)


def text_of(msg):
    return "".join(b.text for b in msg.content if getattr(b, "type", None) == "text")


def tool_uses(msg):
    return [{"id": b.id, "name": b.name, "input": b.input}
            for b in msg.content if getattr(b, "type", None) == "tool_use"]


def describe(msg, **extra):
    out = {"id": msg.id, "model": msg.model, "content": text_of(msg),
           "finish_reason": msg.stop_reason, "stop_reason": msg.stop_reason,
           "tool_calls": tool_uses(msg), "usage": usage_dict(msg.usage)}
    out.update(extra)
    return out


def case_messages_create(client, model, state):
    msg = client.messages.create(
        model=model, max_tokens=64, system=SYSTEM,
        messages=[{"role": "user", "content": PROMPT}])
    if not text_of(msg):
        raise AssertionError("messages_create: no text content")
    return describe(msg)


def case_messages_stream(client, model, state):
    parts, events = [], 0
    with client.messages.stream(
            model=model, max_tokens=64, system=SYSTEM,
            messages=[{"role": "user", "content": PROMPT}]) as stream:
        for text in stream.text_stream:
            parts.append(text)
        final = stream.get_final_message()
    streamed = "".join(parts)
    if not streamed:
        raise AssertionError("messages_stream: no text deltas")
    if final.usage is None or final.usage.output_tokens is None:
        raise AssertionError("messages_stream: final message has no usage")
    return describe(final, content=streamed, final_text=text_of(final))


def case_tool_use(client, model, state):
    messages = [{"role": "user", "content": TOOL_PROMPT}]
    msg = client.messages.create(
        model=model, max_tokens=256, messages=messages, tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"})
    calls = tool_uses(msg)
    if not calls:
        raise AssertionError("tool_use: model made no tool_use")
    if calls[0]["name"] != "get_weather" or not isinstance(calls[0]["input"], dict):
        raise AssertionError("tool_use: bad tool_use %r" % calls[0])
    assistant_blocks = []
    for b in msg.content:
        if b.type == "text":
            assistant_blocks.append({"type": "text", "text": b.text})
        elif b.type == "tool_use":
            assistant_blocks.append({"type": "tool_use", "id": b.id, "name": b.name,
                                     "input": b.input})
    state["tool_messages"] = messages + [{"role": "assistant", "content": assistant_blocks}]
    state["tool_calls"] = calls
    return describe(msg)


def case_tool_result_followup(client, model, state):
    if "tool_messages" not in state:
        case_tool_use(client, model, state)
    results = [{"type": "tool_result", "tool_use_id": c["id"],
                "content": json.dumps({"city": "Paris", "temp_c": 18,
                                       "conditions": "sunny"})}
               for c in state["tool_calls"]]
    messages = list(state["tool_messages"]) + [{"role": "user", "content": results}]
    msg = client.messages.create(
        model=model, max_tokens=128, messages=messages, tools=[WEATHER_TOOL])
    if not text_of(msg) and not tool_uses(msg):
        raise AssertionError("tool_result_followup: empty answer")
    return describe(msg)


def case_count_tokens(client, model, state):
    r = client.messages.count_tokens(
        model=model, system=SYSTEM, messages=[{"role": "user", "content": PROMPT}],
        tools=[WEATHER_TOOL])
    if not isinstance(r.input_tokens, int) or r.input_tokens <= 0:
        raise AssertionError("count_tokens: bad input_tokens %r" % (r.input_tokens,))
    return {"input_tokens": r.input_tokens}


CASES = [
    ("messages_create", case_messages_create),
    ("messages_stream", case_messages_stream),
    ("tool_use", case_tool_use),
    ("tool_result_followup", case_tool_result_followup),
    ("count_tokens", case_count_tokens),
]


def main():
    # the SDK warns about deprecated model names; keep stderr for real errors
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    ap = argparse.ArgumentParser(description="anthropic SDK client cases")
    ap.add_argument("base_url")
    ap.add_argument("api_key")
    ap.add_argument("model")
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--auth", choices=["default", "x-api-key"], default="default",
                    help="default: what the SDK does (anthropic 2.x sends the key as "
                         "'Authorization: Bearer'); x-api-key: send only 'x-api-key: KEY'")
    args = ap.parse_args()
    only = [c for c in args.only.split(",") if c]
    unknown = set(only) - {n for n, _ in CASES}
    if unknown:
        ap.error("unknown case(s): %s" % ",".join(sorted(unknown)))

    headers = None
    if args.auth == "x-api-key":
        headers = {"x-api-key": args.api_key, "Authorization": anthropic.omit}
    client = Anthropic(base_url=args.base_url, api_key=args.api_key,
                       timeout=args.timeout, max_retries=0, default_headers=headers)
    state = {}
    for name, fn in CASES:
        if only and name not in only:
            continue
        try:
            out = fn(client, args.model, state)
        except Exception as e:  # noqa: BLE001 - report every failure the same way
            err = {"case": name, "error": "%s: %s" % (type(e).__name__, e)}
            if isinstance(e, anthropic.APIStatusError):
                err["status_code"] = e.status_code
                try:
                    err["body"] = e.response.json()
                except Exception:
                    err["body"] = e.response.text
            emit(err)
            traceback.print_exc(file=sys.stderr)
            sys.exit(1)
        emit(dict({"case": name}, **out))


if __name__ == "__main__":
    main()
