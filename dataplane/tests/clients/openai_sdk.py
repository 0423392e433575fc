#!/usr/bin/env python3
"""Drive an OpenAI-compatible endpoint with the official `openai` Python SDK.

    python3 openai_sdk.py BASE_URL API_KEY MODEL [--only chat,chat_stream,...]
                          [--timeout SECONDS]

BASE_URL is what the SDK gets as base_url, e.g. http://127.0.0.1:8090/v1 (the SDK
appends /chat/completions). Cases, in order:

  chat                  non-stream chat completion (sends max_tokens)
  chat_stream           stream=True, stream_options.include_usage (sends max_completion_tokens)
  tool_call             a get_weather function tool, tool_choice forcing it
  tool_result_followup  sends the tool call + a role=tool result back, expects text

Each case prints one JSON object on its own line to stdout:
  {"case", "id", "model", "content", "finish_reason", "tool_calls": [...], "usage": {...}}
On any exception the case prints {"case", "error", "status_code", "body"} and the
script exits 1 (error also on stderr). The SDK's retries are off (max_retries=0) so a
429/5xx from the gateway surfaces as-is.
"""

import argparse
import json
import sys
import traceback

import openai
from openai import OpenAI

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
PROMPT = "Say hello in one short sentence."
TOOL_PROMPT = "What is the weather in Paris right now? Use the tool."


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def usage_dict(usage):
    if usage is None:
        return None
    if hasattr(usage, "model_dump"):
        return usage.model_dump(exclude_none=True)
    return dict(usage)


def tool_calls_list(tool_calls):
    out = []
    for tc in tool_calls or []:
        args = tc.function.arguments
        try:
            parsed = json.loads(args) if args else {}
        except ValueError:
            parsed = None
        out.append({"id": tc.id, "type": tc.type, "name": tc.function.name,
                    "arguments": args, "arguments_json": parsed})
    return out


def case_chat(client, model, state):
    r = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}], max_tokens=64)
    ch = r.choices[0]
    if not ch.message.content:
        raise AssertionError("chat: empty content")
    return {"id": r.id, "model": r.model, "content": ch.message.content,
            "finish_reason": ch.finish_reason,
            "tool_calls": tool_calls_list(ch.message.tool_calls),
            "usage": usage_dict(r.usage)}


def case_chat_stream(client, model, state):
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}],
        max_completion_tokens=64, stream=True, stream_options={"include_usage": True})
    parts, finish, usage, rid, rmodel, n = [], None, None, None, None, 0
    for chunk in stream:
        n += 1
        rid = rid or chunk.id
        rmodel = rmodel or chunk.model
        if chunk.usage is not None:
            usage = chunk.usage
        for ch in chunk.choices:
            if ch.delta and ch.delta.content:
                parts.append(ch.delta.content)
            if ch.finish_reason:
                finish = ch.finish_reason
    content = "".join(parts)
    if not content:
        raise AssertionError("chat_stream: no content deltas")
    if usage is None:
        raise AssertionError("chat_stream: include_usage asked but no usage chunk")
    return {"id": rid, "model": rmodel, "content": content, "finish_reason": finish,
            "tool_calls": [], "usage": usage_dict(usage), "chunks": n}


def case_tool_call(client, model, state):
    messages = [{"role": "user", "content": TOOL_PROMPT}]
    r = client.chat.completions.create(
        model=model, messages=messages, max_tokens=256, tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    ch = r.choices[0]
    calls = tool_calls_list(ch.message.tool_calls)
    if not calls:
        raise AssertionError("tool_call: model made no tool call")
    if calls[0]["name"] != "get_weather" or not isinstance(calls[0]["arguments_json"], dict):
        raise AssertionError("tool_call: bad tool call %r" % calls[0])
    state["tool_messages"] = messages + [{
        "role": "assistant", "content": ch.message.content,
        "tool_calls": [{"id": c["id"], "type": "function",
                        "function": {"name": c["name"], "arguments": c["arguments"]}}
                       for c in calls]}]
    state["tool_calls"] = calls
    return {"id": r.id, "model": r.model, "content": ch.message.content,
            "finish_reason": ch.finish_reason, "tool_calls": calls,
            "usage": usage_dict(r.usage)}


def case_tool_result_followup(client, model, state):
    if "tool_messages" not in state:
        case_tool_call(client, model, state)
    messages = list(state["tool_messages"])
    for call in state["tool_calls"]:
        messages.append({"role": "tool", "tool_call_id": call["id"],
                         "content": json.dumps({"city": "Paris", "temp_c": 18,
                                                "conditions": "sunny"})})
    r = client.chat.completions.create(
        model=model, messages=messages, max_tokens=128, tools=[WEATHER_TOOL])
    ch = r.choices[0]
    if not ch.message.content and not ch.message.tool_calls:
        raise AssertionError("tool_result_followup: empty answer")
    return {"id": r.id, "model": r.model, "content": ch.message.content,
            "finish_reason": ch.finish_reason,
            "tool_calls": tool_calls_list(ch.message.tool_calls),
            "usage": usage_dict(r.usage)}


CASES = [
    ("chat", case_chat),
    ("chat_stream", case_chat_stream),
    ("tool_call", case_tool_call),
    ("tool_result_followup", case_tool_result_followup),
]


def main():
    ap = argparse.ArgumentParser(description="openai SDK client cases")
    ap.add_argument("base_url")
    ap.add_argument("api_key")
    ap.add_argument("model")
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    only = [c for c in args.only.split(",") if c]
    unknown = set(only) - {n for n, _ in CASES}
    if unknown:
        ap.error("unknown case(s): %s" % ",".join(sorted(unknown)))

    client = OpenAI(base_url=args.base_url, api_key=args.api_key,
                    timeout=args.timeout, max_retries=0)
    state = {}
    for name, fn in CASES:
        if only and name not in only:
            continue
        try:
            out = fn(client, args.model, state)
        except Exception as e:  # noqa: BLE001 - report every failure the same way
            err = {"case": name, "error": "%s: %s" % (type(e).__name__, e)}
            if isinstance(e, openai.APIStatusError):
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
