"""Streaming behaviour: no holding back, disconnects, slow clients, failures,
and many concurrent streams."""
import asyncio
import json
import os
import socket
import time

from harness import check, eq, SAN, sse_events, wait_for

TSAN = True


def open_stream(p, path, body, key=None):
    """Sends a streaming request on a raw socket; returns the socket after
    the response headers, plus any body bytes already read."""
    s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key or p.key}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}")
    s.sendall(req.encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        check(chunk, "connection closed before headers")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return s, head, rest


def paced_scenario(m, name, n, first_ms, pace_ms, size=60):
    ev = "".join('data: {"i":%d,"pad":"%s"}\n\n' % (i, "x" * size) for i in range(n))
    m.file(name + ".sse", ev)
    m.scenario(name, f"header Content-Type: text/event-stream\nframing chunked\nsplit-events\n"
               f"first-piece-delay {first_ms}\npace {pace_ms}\nbody-file {name}.sse\n")
    return ev


def test_paced_events_arrive_one_by_one(ctx):
    p, m = ctx.proxy, ctx.mock
    n = 20
    paced_scenario(m, "paced", n, 100, 20)
    t0 = time.monotonic()
    s, head, rest = open_stream(p, "/v1/chat/completions?mock=paced", '{"model":"gpt-4o","stream":true}')
    check(b"200" in head.split(b"\r\n")[0], "status 200")
    arrivals = []
    buf = rest
    seen = 0
    while seen < n:
        while buf.count(b"data: ") > seen:
            seen += 1
            arrivals.append(time.monotonic())
        if seen >= n:
            break
        chunk = s.recv(65536)
        check(chunk, "stream ended early")
        buf += chunk
    s.close()
    first = arrivals[0] - t0
    check(0.09 <= first < 0.5, f"first event after {first * 1000:.1f} ms")
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    # Events were sent 20 ms apart: each must arrive on its own (a burst would
    # show as a near-zero gap after a long one).
    slack = 0.012 if not SAN else 0.018
    bursts = [g for g in gaps if g < 0.020 - slack]
    check(not bursts, f"events arrived in bursts: gaps {['%.1f' % (g * 1000) for g in gaps]} ms")


def test_client_disconnect_aborts_streaming_upstream(ctx):
    p, m = ctx.proxy, ctx.mock
    paced_scenario(m, "long", 200, 0, 100)
    m.clear()
    s, head, rest = open_stream(p, "/v1/chat/completions?mock=long", '{"model":"gpt-4o","stream":true}')
    while b"data:" not in rest:
        rest += s.recv(65536)
    seq = m.last()["seq"]
    s.close()
    t_close = time.time() * 1000
    d = m.done(seq, timeout=5)
    eq(d["completed"], False, "upstream transfer aborted")
    check(d["ended_at_ms"] - t_close < 1500, f"aborted {d['ended_at_ms'] - t_close:.0f} ms after the close")


def test_client_disconnect_while_waiting_for_headers(ctx):
    p, m = ctx.proxy, ctx.mock
    m.scenario("slowhead", "delay 20000\nbody late\n")
    m.clear()
    s = socket.create_connection(("127.0.0.1", p.port))
    body = '{"model":"gpt-4o"}'
    s.sendall((f"POST /v1/chat/completions?mock=slowhead HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {p.key}\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
    seq = m.last()["seq"]
    time.sleep(0.3)
    s.close()
    t_close = time.time() * 1000
    d = m.done(seq, timeout=5)
    eq(d["completed"], False, "upstream aborted")
    check(d["ended_at_ms"] - t_close < 1600, f"noticed after {d['ended_at_ms'] - t_close:.0f} ms")


def test_client_disconnect_during_long_silence(ctx):
    p, m = ctx.proxy, ctx.mock
    m.scenario("silent", "header Content-Type: text/event-stream\nframing chunked\nsplit-events\n"
               "stall-at 12 20000\nbody data: first\\n\\ndata: second\\n\\n\n")
    m.clear()
    s, head, rest = open_stream(p, "/v1/chat/completions?mock=silent", '{"model":"gpt-4o","stream":true}')
    while b"first" not in rest:
        rest += s.recv(65536)
    seq = m.last()["seq"]
    s.close()
    t_close = time.time() * 1000
    d = m.done(seq, timeout=5)
    eq(d["completed"], False, "upstream aborted")
    check(d["ended_at_ms"] - t_close < 1600, f"noticed after {d['ended_at_ms'] - t_close:.0f} ms")


def test_upstream_reset_mid_stream_ends_client_stream(ctx):
    p, m = ctx.proxy, ctx.mock
    paced_scenario(m, "rst", 10, 0, 10)
    m.scenario("rst", open(os.path.join(m.dir, "rst.scn")).read() + "reset-at 300\n")
    s, head, rest = open_stream(p, "/v1/chat/completions?mock=rst", '{"model":"gpt-4o","stream":true}')
    s.settimeout(5)
    t0 = time.monotonic()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    check(time.monotonic() - t0 < 3, "client stream ended promptly")
    check(not rest.endswith(b"0\r\n\r\n"), "truncated chunked body signals the failure")
    s.close()


def test_idle_timeout_mid_stream(ctx):
    p = ctx.new_proxy(extra_upstream="idle_timeout = 1s")
    m = ctx.mock
    m.scenario("stall", "header Content-Type: text/event-stream\nframing chunked\nsplit-events\n"
               "stall-at 12 10000\nbody data: first\\n\\ndata: second\\n\\n\n")
    s, head, rest = open_stream(p, "/v1/chat/completions?mock=stall", '{"model":"gpt-4o","stream":true}')
    s.settimeout(6)
    t0 = time.monotonic()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    took = time.monotonic() - t0
    check(0.8 < took < 3, f"stream ended {took:.2f}s after the silence began")
    check(b"first" in rest and b"second" not in rest, "partial stream delivered")
    s.close()
    # The log line is written when the request finishes, which may be just
    # after the client has seen the end of the stream.
    wait_for(lambda: "idle_timeout" in p.log(), 5, what="the failure recorded in the log")


def test_slow_client_memory_bounded(ctx):
    p, m = ctx.proxy, ctx.mock
    # 32 MB of SSE as fast as the mock can write it; the client does not read.
    ev = 'data: {"pad":"%s"}\n\n' % ("y" * 1000)
    n = 32000
    m.file("big.sse", ev * n)
    m.scenario("big", "header Content-Type: text/event-stream\nframing chunked\nsplit 65536\nbody-file big.sse\n")
    base = p.rss_kb()
    s, head, rest = open_stream(p, "/v1/chat/completions?mock=big", '{"model":"gpt-4o","stream":true}')
    time.sleep(1.5)
    grown = p.rss_kb() - base
    # 32 MB were offered; the proxy may hold 128 KiB + one read for this
    # client.  Sanitizer builds carry shadow memory and a quarantine.
    limit = 16 * 1024 if not SAN else 40 * 1024
    check(grown < limit, f"RSS grew by {grown} KB with a stalled client")
    # Now read it all: the stream resumes and completes intact.
    s.settimeout(30)
    total, tail = len(rest), rest[-8:]
    while not tail.endswith(b"0\r\n\r\n"):
        chunk = s.recv(1 << 20)
        check(chunk, "stream ended without its last chunk")
        total += len(chunk)
        tail = (tail + chunk)[-8:]
    s.close()
    check(total > n * len(ev), f"whole stream delivered ({total} bytes)")


def test_idle_keepalive_connection_closed(ctx):
    p = ctx.new_proxy(extra_server="client_idle_timeout = 1s")
    s = socket.create_connection(("127.0.0.1", p.port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    data = s.recv(4096)
    check(data.startswith(b"HTTP/1.1 200"), "healthz answered")
    s.settimeout(5)
    t0 = time.monotonic()
    rest = s.recv(4096)
    took = time.monotonic() - t0
    eq(rest, b"", "server closed the idle connection")
    check(0.5 < took < 3.5, f"closed after {took:.2f}s")
    s.close()


async def _one_stream(port, key, path, want, results):
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        body = '{"model":"gpt-4o","stream":true}'
        w.write((f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                 f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
        await w.drain()
        data = await asyncio.wait_for(r.read(), 120)
        w.close()
        head, _, chunked = data.partition(b"\r\n\r\n")
        # De-chunk.
        out, rest = b"", chunked
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            n = int(size_line, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        results.append(head.startswith(b"HTTP/1.1 200") and out == want)
    except Exception as e:
        results.append(repr(e))


def test_2000_concurrent_slow_streams(ctx):
    n = 2000 if not SAN else 500
    # 2,000 transfers start at once on two cores shared with the client and
    # the mock: in one full local run (of about ten) 376 of them waited over
    # the harness's 5 s first_byte_timeout, the run taking 9.4 s instead of
    # 6-8.  This test is about completing them all, intact, within 30 s.
    p = ctx.new_proxy(extra_server="max_connections = 5000",
                      extra_upstream="first_byte_timeout = 20s")
    m = ctx.mock
    want = paced_scenario(m, "slow2k", 10, 200, 300, size=40).encode()
    results = []

    async def run():
        await asyncio.gather(*[_one_stream(p.port, p.key, "/v1/chat/completions?mock=slow2k",
                                           want, results) for _ in range(n)])
    t0 = time.monotonic()
    asyncio.run(run())
    took = time.monotonic() - t0
    ok = sum(1 for r in results if r is True)
    bad = [r for r in results if r is not True][:5]
    eq(ok, n, f"streams complete and intact in {took:.1f}s (first failures: {bad})")
    check(took < 30, f"{n} streams of ~3 s took {took:.1f}s")
