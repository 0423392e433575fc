#!/usr/bin/env python3
"""Drive a Vertex AI endpoint with the official `anthropic` SDK's `AnthropicVertex`.

    python3 anthropic_vertex.py BASE_URL ACCESS_TOKEN MODEL PROJECT REGION
                                [--only messages_create,...] [--timeout SECONDS]

BASE_URL is what the client gets as base_url, e.g. http://127.0.0.1:8090/v1/vertex/v1
(the SDK appends /projects/{PROJECT}/locations/{REGION}/publishers/anthropic/models/
{MODEL}:rawPredict, or :streamRawPredict for a stream, and moves the model out of the
body and `anthropic_version: vertex-2023-10-16` into it). ACCESS_TOKEN is given as
`access_token`, so no Google credentials are looked up and the SDK sends
`Authorization: Bearer ACCESS_TOKEN`, which a gateway takes as its key. Retries are off.
Cases, in order:

  messages_create  non-stream messages.create (rawPredict)
  messages_stream  messages.stream: text_stream collected + get_final_message() usage
                   (streamRawPredict)

Each case prints one JSON object on its own line to stdout:
  {"case", "id", "model", "content", "stop_reason", "usage"}
On any exception the case prints {"case", "error", "status_code", "body"} and the
script exits 1 (traceback on stderr).
"""

import argparse
import json
import sys
import traceback

from anthropic import AnthropicVertex, APIStatusError

PROMPT = "Say hello in one short sentence."
SYSTEM = "You are a terse assistant."


def emit(obj):
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def text_of(message):
    return "".join(b.text for b in message.content if getattr(b, "type", None) == "text")


def summary(message):
    return {"id": message.id, "model": message.model, "content": text_of(message),
            "stop_reason": message.stop_reason,
            "usage": message.usage.model_dump(mode="json", exclude_none=True)}


def case_messages_create(client, model):
    m = client.messages.create(model=model, max_tokens=64, system=SYSTEM,
                               messages=[{"role": "user", "content": PROMPT}])
    if not text_of(m):
        raise AssertionError("messages_create: no text")
    return summary(m)


def case_messages_stream(client, model):
    with client.messages.stream(model=model, max_tokens=64, system=SYSTEM,
                                messages=[{"role": "user", "content": PROMPT}]) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    if not streamed:
        raise AssertionError("messages_stream: no text streamed")
    if not final.usage or not final.usage.output_tokens:
        raise AssertionError("messages_stream: no usage")
    out = summary(final)
    out["streamed"] = streamed
    return out


CASES = {
    "messages_create": case_messages_create,
    "messages_stream": case_messages_stream,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base_url")
    ap.add_argument("access_token")
    ap.add_argument("model")
    ap.add_argument("project")
    ap.add_argument("region")
    ap.add_argument("--only", default=None)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    client = AnthropicVertex(region=args.region, project_id=args.project,
                             base_url=args.base_url, access_token=args.access_token,
                             max_retries=0, timeout=args.timeout)
    names = args.only.split(",") if args.only else list(CASES)
    for name in names:
        try:
            emit(dict({"case": name}, **CASES[name](client, args.model)))
        except Exception as e:  # noqa: BLE001 - report any failure as a JSON line
            traceback.print_exc()
            emit({"case": name, "error": repr(e),
                  "status_code": getattr(e, "status_code", None),
                  "body": getattr(e, "body", None) if isinstance(e, APIStatusError) else None})
            sys.exit(1)


if __name__ == "__main__":
    main()
