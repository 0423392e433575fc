#!/usr/bin/env python3
"""Drive a Gemini API endpoint with the official `google-genai` Python SDK.

    python3 genai_gemini.py BASE_URL API_KEY MODEL [--only generate_content,...]
                            [--timeout SECONDS] [--api-version v1beta]

BASE_URL is what the client gets as http_options.base_url, e.g.
http://127.0.0.1:8090/v1/gemini (the SDK keeps that path and appends
/v1beta/models/{MODEL}:{method}). The key goes in the `x-goog-api-key` header. The SDK
is pinned to the Gemini Developer API (vertexai=False), whatever GOOGLE_GENAI_USE_VERTEXAI
says, and retries are off (one attempt). Cases, in order:

  generate_content         models.generate_content: system instruction, one user turn
  generate_content_stream  models.generate_content_stream (streamGenerateContent?alt=sse)
  count_tokens             models.count_tokens
  function_call            a get_weather function declaration, mode ANY forcing it
  function_response        sends the call + a functionResponse back, expects text

Each case prints one JSON object on its own line to stdout:
  {"case", "text", "stop_reason", "usage", ...}   (count_tokens: "total_tokens";
  function_call: "function_calls"; the stream case: "chunks")
On any exception the case prints {"case", "error", "status_code", "status"} and the
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


def usage_dict(u):
    if u is None:
        return None
    return u.model_dump(mode="json", exclude_none=True)


def finish(resp):
    if not resp.candidates:
        return None
    fr = resp.candidates[0].finish_reason
    return getattr(fr, "value", fr)


def candidate_text(resp):
    """Text parts of the first candidate (thought parts excluded), without the SDK's
    warnings about non-text parts."""
    if not resp.candidates or not resp.candidates[0].content:
        return ""
    return "".join(p.text for p in (resp.candidates[0].content.parts or [])
                   if p.text and not p.thought)


def case_generate_content(client, model, types, state):
    r = client.models.generate_content(
        model=model, contents=PROMPT,
        config=types.GenerateContentConfig(system_instruction=SYSTEM, max_output_tokens=64,
                                           temperature=0.5))
    text = candidate_text(r)
    if not text:
        raise AssertionError("generate_content: no text")
    return {"text": text, "stop_reason": finish(r), "usage": usage_dict(r.usage_metadata),
            "model_version": r.model_version, "response_id": r.response_id}


def case_generate_content_stream(client, model, types, state):
    parts, stop, usage, n = [], None, None, 0
    for chunk in client.models.generate_content_stream(
            model=model, contents=PROMPT,
            config=types.GenerateContentConfig(system_instruction=SYSTEM,
                                               max_output_tokens=64, temperature=0.5)):
        n += 1
        parts.append(candidate_text(chunk))
        stop = finish(chunk) or stop
        if chunk.usage_metadata is not None:
            usage = chunk.usage_metadata  # cumulative: the last one wins
    text = "".join(parts)
    if not text:
        raise AssertionError("generate_content_stream: no text")
    if stop is None:
        raise AssertionError("generate_content_stream: no finishReason")
    return {"text": text, "stop_reason": stop, "usage": usage_dict(usage), "chunks": n}


def case_count_tokens(client, model, types, state):
    r = client.models.count_tokens(model=model, contents=PROMPT)
    if not r.total_tokens:
        raise AssertionError("count_tokens: no totalTokens")
    return {"text": None, "stop_reason": None, "total_tokens": r.total_tokens,
            "usage": {"total_tokens": r.total_tokens,
                      "cached_content_token_count": r.cached_content_token_count}}


def _tool_config(types):
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="get_weather", description="Get the current weather for a city.",
        parameters_json_schema=WEATHER_SCHEMA)])
    return tool, types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
        mode="ANY", allowed_function_names=["get_weather"]))


def case_function_call(client, model, types, state):
    tool, tool_config = _tool_config(types)
    contents = [types.Content(role="user", parts=[types.Part(text=TOOL_PROMPT)])]
    r = client.models.generate_content(
        model=model, contents=contents,
        config=types.GenerateContentConfig(
            tools=[tool], tool_config=tool_config,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)))
    calls = r.function_calls or []
    if not calls:
        raise AssertionError("function_call: no functionCall part")
    if calls[0].name != "get_weather" or not isinstance(calls[0].args, dict):
        raise AssertionError("function_call: bad call %r" % calls[0])
    # Keep the model turn exactly as returned (thoughtSignature included) for the follow-up.
    state["contents"] = contents + [r.candidates[0].content]
    state["calls"] = calls
    return {"text": candidate_text(r) or None, "stop_reason": finish(r),
            "usage": usage_dict(r.usage_metadata),
            "function_calls": [{"id": c.id, "name": c.name, "args": c.args} for c in calls]}


def case_function_response(client, model, types, state):
    if "contents" not in state:
        case_function_call(client, model, types, state)
    tool, _ = _tool_config(types)
    responses = [types.Part.from_function_response(
        name=c.name, response={"city": (c.args or {}).get("city"), "temp_c": 18,
                               "conditions": "sunny"}) for c in state["calls"]]
    contents = state["contents"] + [types.Content(role="user", parts=responses)]
    r = client.models.generate_content(
        model=model, contents=contents,
        config=types.GenerateContentConfig(
            tools=[tool],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)))
    text = candidate_text(r)
    if not text and not r.function_calls:
        raise AssertionError("function_response: empty answer")
    return {"text": text, "stop_reason": finish(r), "usage": usage_dict(r.usage_metadata)}


CASES = [
    ("generate_content", case_generate_content),
    ("generate_content_stream", case_generate_content_stream),
    ("count_tokens", case_count_tokens),
    ("function_call", case_function_call),
    ("function_response", case_function_response),
]


def main():
    ap = argparse.ArgumentParser(description="google-genai client cases")
    ap.add_argument("base_url")
    ap.add_argument("api_key")
    ap.add_argument("model")
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--api-version", default=None,
                    help="override the SDK's API version (default: the SDK's, v1beta)")
    args = ap.parse_args()
    only = [c for c in args.only.split(",") if c]
    unknown = set(only) - {n for n, _ in CASES}
    if unknown:
        ap.error("unknown case(s): %s" % ",".join(sorted(unknown)))

    for var in ("GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION"):
        os.environ.pop(var, None)
    from google import genai
    from google.genai import errors, types

    http_options = types.HttpOptions(
        base_url=args.base_url, timeout=int(args.timeout * 1000),
        retry_options=types.HttpRetryOptions(attempts=1))
    if args.api_version:
        http_options.api_version = args.api_version
    client = genai.Client(api_key=args.api_key, vertexai=False, http_options=http_options)
    state = {}
    for name, fn in CASES:
        if only and name not in only:
            continue
        try:
            out = fn(client, args.model, types, state)
        except Exception as e:  # noqa: BLE001 - report every failure the same way
            err = {"case": name, "error": "%s: %s" % (type(e).__name__, e)}
            if isinstance(e, errors.APIError):
                err["status_code"] = e.code
                err["status"] = e.status
            emit(err)
            traceback.print_exc(file=sys.stderr)
            sys.exit(1)
        emit(dict({"case": name}, **out))


if __name__ == "__main__":
    main()
