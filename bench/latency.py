#!/usr/bin/env python3
"""Per-event delay of streamed responses: upstream send() -> client recv().

The mock stamps each SSE event with the time of its send() (scenario
directive `stamp`); the client notes when the event's bytes arrive.  Both
clocks are the same machine's CLOCK_REALTIME, so the difference is the
delay the path adds.  The same paced stream (first event after 100 ms,
then one every 20 ms) is measured directly against the mock and through
whyops-proxy, with 1 and with 200 concurrent streams.

  python3 bench/latency.py        (after make; uses build/mock-upstream)
"""
import asyncio
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))
import harness  # noqa: E402

EVENTS = 50


async def one(port, key, path, delays):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    body = '{"model":"gpt-4o","stream":true}'
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    w.write((f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}X-WhyOps-Signature: off\r\n"
             f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
    await w.drain()
    buf = b""
    while True:
        chunk = await r.read(65536)
        now = time.time_ns() // 1000
        if not chunk:
            break
        buf += chunk
        while b'"t":"' in buf:
            i = buf.index(b'"t":"') + 5
            if len(buf) < i + 16:
                break
            delays.append(now - int(buf[i:i + 16]))
            buf = buf[i + 16:]
    w.close()


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")


def measure(port, key, path, n):
    delays = []

    async def run():
        await asyncio.gather(*[one(port, key, path, delays) for _ in range(n)])
    asyncio.run(run())
    return delays


def main():
    tmp = tempfile.mkdtemp(prefix="whyops-lat-")
    mock = harness.Mock(tmp)
    ev = "".join('data: {"i":%d,"t":"@@@@@@@@@@@@@@@@"}\n\n' % i for i in range(EVENTS))
    mock.file("lat.sse", ev)
    mock.scenario("lat", "header Content-Type: text/event-stream\nframing chunked\nsplit-events\n"
                  "first-piece-delay 100\npace 20\nstamp\nbody-file lat.sse\n")
    proxy = harness.Proxy(tmp, mock.url, extra_server="threads = 1\nlog_level = info\n"
                          "max_connections = 2000")
    print("| streams | path | events | p50 us | p90 us | p99 us | max us |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    try:
        for n in (1, 200):
            for name, port, key, path in (
                    ("direct", mock.port, None, "/v1/chat/completions?mock=lat"),
                    ("whyops-proxy", proxy.port, proxy.key, "/v1/chat/completions?mock=lat")):
                d = measure(port, key, path, n)
                print(f"| {n} | {name} | {len(d)} | {pct(d, .5)} | {pct(d, .9)} | "
                      f"{pct(d, .99)} | {max(d) if d else 'nan'} |", flush=True)
    finally:
        proxy.stop()
        mock.stop()


if __name__ == "__main__":
    main()
