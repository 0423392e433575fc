#!/usr/bin/env python3
"""Drive a Vertex AI endpoint with the official `google-genai` SDK (`vertexai=True`).

    python3 genai_vertex.py BASE_URL KEY MODEL PROJECT LOCATION
                            [--only generate_content,...] [--timeout SECONDS]

BASE_URL is what the client gets as http_options.base_url, e.g.
http://127.0.0.1:8090/v1/vertex (the SDK appends
/v1beta1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{MODEL}:
generateContent, or :streamGenerateContent?alt=sse). Google credentials that need no
network are given (`google.oauth2.credentials.Credentials(token=KEY)`), so the SDK sends
`Authorization: Bearer KEY`, which a gateway takes as its key; the same header is also
set in http_options.headers. Retries are off (one attempt). Cases, in order:

  generate_content         models.generate_content: system instruction, one user turn
  generate_content_stream  models.generate_content_stream

Each case prints one JSON object on its own line to stdout:
  {"case", "text", "stop_reason", "usage"}   (the stream case adds "chunks")
On any exception the case prints {"case", "error", "status_code"} and the script exits 1
(traceback on stderr).
"""

import argparse
import json
import os
import sys
import traceback

PROMPT = "Say hello in one short sentence."
SYSTEM = "You are a terse assistant."


def emit(obj):
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def usage_dict(u):
    return None if u is None else u.model_dump(mode="json", exclude_none=True)


def finish(resp):
    if not resp.candidates:
        return None
    fr = resp.candidates[0].finish_reason
    return getattr(fr, "value", fr)


def candidate_text(resp):
    if not resp.candidates or not resp.candidates[0].content:
        return ""
    return "".join(p.text for p in (resp.candidates[0].content.parts or [])
                   if p.text and not p.thought)


def config(types):
    return types.GenerateContentConfig(system_instruction=SYSTEM, max_output_tokens=64,
                                       temperature=0.5)


def case_generate_content(client, model, types):
    r = client.models.generate_content(model=model, contents=PROMPT, config=config(types))
    text = candidate_text(r)
    if not text:
        raise AssertionError("generate_content: no text")
    return {"text": text, "stop_reason": finish(r), "usage": usage_dict(r.usage_metadata)}


def case_generate_content_stream(client, model, types):
    parts, stop, usage, n = [], None, None, 0
    for chunk in client.models.generate_content_stream(model=model, contents=PROMPT,
                                                       config=config(types)):
        n += 1
        parts.append(candidate_text(chunk))
        stop = finish(chunk) or stop
        if chunk.usage_metadata is not None:
            usage = chunk.usage_metadata
    text = "".join(parts)
    if not text:
        raise AssertionError("generate_content_stream: no text")
    if stop is None:
        raise AssertionError("generate_content_stream: no finishReason")
    return {"text": text, "stop_reason": stop, "usage": usage_dict(usage), "chunks": n}


CASES = {
    "generate_content": case_generate_content,
    "generate_content_stream": case_generate_content_stream,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base_url")
    ap.add_argument("key")
    ap.add_argument("model")
    ap.add_argument("project")
    ap.add_argument("location")
    ap.add_argument("--only", default=None)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    # The environment must not switch the client to another backend or key.
    for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI",
                "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION"):
        os.environ.pop(var, None)
    from google import genai
    from google.genai import types
    from google.oauth2.credentials import Credentials

    client = genai.Client(
        vertexai=True, project=args.project, location=args.location,
        credentials=Credentials(token=args.key),
        http_options=types.HttpOptions(
            base_url=args.base_url, headers={"Authorization": "Bearer " + args.key},
            timeout=int(args.timeout * 1000),
            retry_options=types.HttpRetryOptions(attempts=1)))
    names = args.only.split(",") if args.only else list(CASES)
    for name in names:
        try:
            emit(dict({"case": name}, **CASES[name](client, args.model, types)))
        except Exception as e:  # noqa: BLE001 - report any failure as a JSON line
            traceback.print_exc()
            emit({"case": name, "error": repr(e),
                  "status_code": getattr(e, "code", None)})
            sys.exit(1)


if __name__ == "__main__":
    main()
