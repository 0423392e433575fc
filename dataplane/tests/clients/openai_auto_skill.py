#!/usr/bin/env python3
"""The official `openai` SDK asking the gateway to choose the model.

    python3 openai_auto_skill.py BASE_URL API_KEY

Cases, one JSON object per line on stdout ({"case", "model_header", "reason", "content"}):
  auto_simple      model="auto", a one-line question
  auto_skill       model="auto" with the X-Gateway-Skill: architecture-review header
  auto_off         model="auto" with extra_body {"smart_routing": false}
The SDK's retries are off, so a gateway error surfaces as-is (exit 1).
"""

import json
import sys

from openai import OpenAI


def main():
    base_url, api_key = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=60)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    cases = [
        ("auto_simple", {}, None),
        ("auto_skill", {"X-Gateway-Skill": "architecture-review"}, None),
        ("auto_off", {}, {"smart_routing": False}),
    ]
    for name, headers, extra_body in cases:
        raw = client.chat.completions.with_raw_response.create(
            model="auto",
            messages=question,
            max_tokens=32,
            extra_headers=headers,
            extra_body=extra_body,
        )
        completion = raw.parse()
        print(json.dumps({
            "case": name,
            "model_header": raw.headers.get("x-ai-gateway-model"),
            "reason": raw.headers.get("x-ai-gateway-route-reason"),
            "content": completion.choices[0].message.content,
        }), flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - the test reads the message
        print(f"error: {e!r}", file=sys.stderr)
        sys.exit(1)
