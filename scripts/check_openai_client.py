#!/usr/bin/env python3
"""Checks a running `roformer serve` with OpenAI's official Python client (`pip install
openai`), base URL pointed at the server: embeddings of a list and of a text, float and
the client's default base64 agreeing exactly, unit length, usage counted, and an empty
input refused with a 400. Usage: check_openai_client.py http://127.0.0.1:PORT"""

import math
import sys

from openai import BadRequestError, OpenAI

client = OpenAI(base_url=sys.argv[1].rstrip("/") + "/v1", api_key="unused")
texts = ["Good morrow, my lord.", "To be or not to be"]
floats = client.embeddings.create(model="default", input=texts, encoding_format="float")
assert [d.index for d in floats.data] == [0, 1]
assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0
encoded = client.embeddings.create(model="default", input=texts[0])  # base64 by default
gap = max(abs(x - y) for x, y in zip(floats.data[0].embedding, encoded.data[0].embedding))
norm = math.sqrt(sum(x * x for x in floats.data[0].embedding))
assert gap == 0.0 and abs(norm - 1.0) < 1e-5, (gap, norm)
try:
    client.embeddings.create(model="default", input="")
    raise SystemExit("an empty input was answered")
except BadRequestError:
    pass
print(f"OK: {len(floats.data)} embeddings of {len(floats.data[0].embedding)} dimensions, "
      f"model {floats.model}, {floats.usage.prompt_tokens} tokens; base64 equals float; "
      "an empty input is a 400")
