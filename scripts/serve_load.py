#!/usr/bin/env python3
"""Load generator for `roformer serve` (standard library only).

Drives POST /embed at a fixed concurrency over keep-alive connections, one request in
flight per connection, each request one sentence drawn in turn from a file, for a fixed
time or a fixed number of requests. Prints one JSON object: requests/s, tokens/s (from the
server's x-compute-tokens header), p50/p90/p99 latency in ms, errors, and the mean batch
size the server formed in that window (from /metrics: roformer_batch_size sum / count).
Every request and its answer stay on this machine (the server's loopback address).
"""

import argparse
import asyncio
import json
import re
import sys
import time
import urllib.request


def batch_totals(base):
    """(sum, count) of roformer_batch_size over every model, from /metrics."""
    text = urllib.request.urlopen(base + "/metrics", timeout=30).read().decode()
    total, count = 0.0, 0.0
    for line in text.splitlines():
        match = re.match(r"roformer_batch_size_(sum|count)\{[^}]*\} ([0-9.eE+-]+)", line)
        if match:
            if match.group(1) == "sum":
                total += float(match.group(2))
            else:
                count += float(match.group(2))
    return total, count


async def request(reader, writer, host, path, body):
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body)
    await writer.drain()
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    answer = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, answer


async def connection(args, host, port, sentences, start_index, deadline, results):
    reader, writer = await asyncio.open_connection(host, port)
    index = start_index
    while time.perf_counter() < deadline and (args.requests == 0 or results["sent"] < args.requests):
        results["sent"] += 1
        text = sentences[index % len(sentences)]
        index += args.concurrency
        body = json.dumps({"inputs": text}).encode()
        started = time.perf_counter()
        try:
            status, headers, _ = await request(reader, writer, f"{host}:{port}", args.route, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            results["errors"] += 1
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
            continue
        results["latencies"].append(time.perf_counter() - started)
        if status != 200:
            results["errors"] += 1
        else:
            results["tokens"] += int(headers.get("x-compute-tokens", "0"))
    writer.close()


async def run(args, sentences):
    base = args.url.rstrip("/")
    hostport = base.split("://", 1)[1]
    host, port = hostport.rsplit(":", 1)
    before = batch_totals(base)
    results = {"sent": 0, "errors": 0, "tokens": 0, "latencies": []}
    started = time.perf_counter()
    deadline = started + args.duration
    await asyncio.gather(*[
        connection(args, host, int(port), sentences, i, deadline, results)
        for i in range(args.concurrency)
    ])
    seconds = time.perf_counter() - started
    after = batch_totals(base)
    latencies = sorted(results["latencies"])

    def percentile(p):
        if not latencies:
            return None
        return 1000 * latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    batches = after[1] - before[1]
    return {
        "concurrency": args.concurrency,
        "requests": len(latencies),
        "errors": results["errors"],
        "seconds": seconds,
        "requests_per_second": len(latencies) / seconds,
        "tokens_per_second": results["tokens"] / seconds,
        "p50_ms": percentile(50),
        "p90_ms": percentile(90),
        "p99_ms": percentile(99),
        "mean_batch_size": (after[0] - before[0]) / batches if batches else None,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--sentences", required=True, help="a file, one sentence a line")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--requests", type=int, default=0, help="stop after this many (0: time only)")
    parser.add_argument("--route", default="/embed")
    args = parser.parse_args()
    if not re.match(r"^http://(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+/?$", args.url):
        sys.exit("--url must be a loopback address (http://127.0.0.1:PORT)")
    with open(args.sentences, encoding="utf-8") as file:
        sentences = [line.strip() for line in file if line.strip()]
    print(json.dumps(asyncio.run(run(args, sentences))))


if __name__ == "__main__":
    main()
