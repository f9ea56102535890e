"""Events delivered to Redis Streams by a real redis-server; an outage goes to
the spool and is replayed once Redis is back."""
import json
import os
import shutil
import socket
import subprocess
import threading
import time

from harness import check, eq, wait_for

TSAN = True


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Redis:
    """A redis-server of the test's own, and a minimal RESP client."""

    def __init__(self, tmp, port=None):
        self.dir = os.path.join(tmp, "redis-%d" % time.monotonic_ns())
        os.makedirs(self.dir)
        self.port = port or free_port()
        self.proc = None
        self.start()

    def start(self):
        check(shutil.which("redis-server"), "redis-server is installed")
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      # AOF: a restart keeps what the stream had,
                                      # as a production Redis would.
                                      "--save", "", "--appendonly", "yes",
                                      "--appendfsync", "always", "--dir", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self._ping(), 10, what="redis-server")

    def _ping(self):
        try:
            return self.cmd("PING") == "PONG"
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def cmd(self, *args):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            req = b"*%d\r\n" % len(args) + b"".join(
                b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in map(str, args))
            s.sendall(req)
            f = s.makefile("rb")
            return self._read(f)
        finally:
            s.close()

    def _read(self, f):
        line = f.readline()
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = f.read(n + 2)[:-2]
            return data.decode()
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read(f) for _ in range(n)]
        raise RuntimeError("bad RESP: %r" % line)

    def stream(self, name="whyops:events"):
        """Every entry's payload, parsed."""
        out = []
        for _id, fields in self.cmd("XRANGE", name, "-", "+") or []:
            kv = dict(zip(fields[::2], fields[1::2]))
            out.append(json.loads(kv["payload"]))
        return out


def proxy_with_redis(ctx, r, extra=""):
    spool = os.path.join(ctx.tmp, "spool-%d" % time.monotonic_ns())
    return ctx.new_proxy(extra_events=f"sink = redis\nredis = 127.0.0.1:{r.port}\n"
                         f"spool_dir = {spool}\nredis_timeout = 300ms\n{extra}"), spool


def scenarios(m):
    m.scenario("rj", 'header Content-Type: application/json\nbody {"id":"c","object":"chat.completion",'
               '"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},'
               '"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n')
    m.scenario("rs", "header Content-Type: text/event-stream\nframing chunked\nsplit-events\n"
               'body data: {"id":"s","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,'
               '"delta":{"content":"yo"},"finish_reason":null}]}\\n\\ndata: {"id":"s","object":"chat.completion.chunk",'
               '"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\\n\\ndata: {"id":"s",'
               '"object":"chat.completion.chunk","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":2,'
               '"completion_tokens":1,"total_tokens":3}}\\n\\ndata: [DONE]\\n\\n\n')


def test_events_reach_the_stream(ctx):
    r = Redis(ctx.tmp)
    ctx.cleanup.append(r)
    p, _ = proxy_with_redis(ctx, r)
    scenarios(ctx.mock)
    st, _, _ = p.post("/v1/chat/completions?mock=rj", '{"model":"gpt-4o","messages":[]}',
                      headers={"X-Request-Id": "rd-json", "X-Agent-Name": "redis-agent"})
    eq(st, 200, "status")
    st, _, _ = p.post("/v1/chat/completions?mock=rs", '{"model":"gpt-4o","stream":true,"messages":[]}',
                      headers={"X-Request-Id": "rd-stream"})
    eq(st, 200, "status")
    evs = wait_for(lambda: (lambda e: e if len(e) >= 4 else None)(r.stream()), 5, what="4 events in Redis")
    for e in evs:
        eq(e["source"], "proxy", "envelope source")
        check("enqueuedAt" in e and "payload" in e, "envelope")
    resp = [e["payload"] for e in evs if e["payload"]["eventType"] == "llm_response"]
    eq(len(resp), 2, "two responses")
    for pl in resp:
        eq(pl["metadata"]["provider"], "openai", "provider")
        check(pl["metadata"]["model"], "model")
    # A consumer group reads them.
    r.cmd("XGROUP", "CREATE", "whyops:events", "analyse", "0")
    got = r.cmd("XREADGROUP", "GROUP", "analyse", "c1", "COUNT", "100", "STREAMS", "whyops:events", ">")
    entries = got[0][1]
    eq(len(entries), len(evs), "group reads every entry")
    first = json.loads(dict(zip(entries[0][1][::2], entries[0][1][1::2]))["payload"])["payload"]
    for k in ("traceId", "agentName", "eventType"):
        check(k in first, f"{k} in the group's entries")


def test_outage_spools_and_replays(ctx):
    r = Redis(ctx.tmp)
    ctx.cleanup.append(r)
    p, spool = proxy_with_redis(ctx, r)
    scenarios(ctx.mock)
    ids = []

    def call(i):
        rid = f"rd-out-{i}"
        st, _, _ = p.post("/v1/chat/completions?mock=rj", '{"model":"gpt-4o","messages":[]}',
                          headers={"X-Request-Id": rid})
        eq(st, 200, "status")
        ids.append(rid)
    for i in range(20):
        call(i)
    wait_for(lambda: len(r.stream()) >= 40, 5, what="events before the outage")
    r.stop()
    t0 = time.monotonic()
    for i in range(20, 120):
        call(i)
    took = time.monotonic() - t0
    check(took < 5, f"100 requests with Redis down took {took:.1f}s")
    time.sleep(1)
    check(any(n.startswith("spool-") for n in os.listdir(spool)), "events spooled to disk")
    r.start()
    want = {i for i in ids}

    def all_there():
        got = {e["payload"]["requestId"] for e in r.stream()}
        return got >= want and got
    wait_for(all_there, 20, what="every request's events in Redis after the outage")
    evs = r.stream()
    eq(len({e["payload"]["eventId"] for e in evs}), len(evs), "no duplicate event ids")
    eq(len(evs), 2 * len(ids), "two events per request")
    log = p.log()
    check("redis" in log and "connection" in log.lower(), "state changes logged")


async def _stream(port, key, results):
    import asyncio
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        body = '{"model":"gpt-4o","stream":true,"messages":[]}'
        w.write((f"POST /v1/chat/completions?mock=slowdrain HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Bearer {key}\r\nX-WhyOps-Signature: off\r\nConnection: close\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
        await w.drain()
        data = await asyncio.wait_for(r.read(), 30)
        results.append(data.endswith(b"0\r\n\r\n") and data.count(b"data: ") == 6)
    except Exception as e:
        results.append(repr(e))


def test_sigterm_drains_open_streams_into_redis_or_spool(ctx):
    import asyncio
    r = Redis(ctx.tmp)
    ctx.cleanup.append(r)
    p, spool = proxy_with_redis(ctx, r, )
    ctx.mock.scenario("slowdrain", "header Content-Type: text/event-stream\nframing chunked\n"
                      "split-events\npace 300\nbody " + "data: {\\\"choices\\\":[]}\\n\\n" * 5 +
                      "data: [DONE]\\n\\n\n")
    n = 200
    results = []

    async def run():
        tasks = [asyncio.create_task(_stream(p.port, p.key, results)) for _ in range(n)]
        await asyncio.sleep(0.5)
        r.stop()                     # Redis goes away too: events must be spooled
        p.signal(15)
        await asyncio.gather(*tasks)
    t0 = time.monotonic()
    asyncio.run(run())
    eq(sum(1 for x in results if x is True), n, f"every stream completed ({[x for x in results if x is not True][:3]})")
    p.proc.wait(30)
    eq(p.proc.returncode, 0, "exit status after the drain")
    check(time.monotonic() - t0 < 15, "drained within the timeout")
    check("waiting up to" in p.log(), "drain logged")
    # Everything went to the spool; a new proxy with Redis back replays it.
    r.start()
    ctx.cleanup.remove(p)
    p.check_log()
    p2 = ctx.new_proxy(extra_events=f"sink = redis\nredis = 127.0.0.1:{r.port}\nspool_dir = {spool}\n")
    wait_for(lambda: len(r.stream()) >= 2 * n, 20, what="spooled events replayed after restart")
    evs = r.stream()
    eq(len({e["payload"]["eventId"] for e in evs}), 2 * n, "every event exactly once")
