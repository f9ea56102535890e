"""Events delivered to Redis Streams by a real redis-server; an outage goes to
the spool and is replayed once Redis is back."""
import json
import os
import shutil
import socket
import subprocess
import threading
import time

from harness import SAN, check, eq, wait_for

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
        # Ready means answering commands: a Redis loading its AOF answers
        # -LOADING for a moment after it accepts connections.
        try:
            return self.cmd("PING") == "PONG" and self.cmd("DBSIZE") is not None
        except (OSError, RuntimeError):
            return False
        except RuntimeError as e:    # -LOADING while it reads its AOF back
            if str(e).startswith("LOADING"):
                return False
            raise

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
    n = 500 if not SAN else 200
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


# --- load, outages and damage -------------------------------------------------

CHAT = '{"model":"gpt-4o","messages":[{"role":"user","content":"hello %d"}]}'
EXPECTED_TYPES = ("user_message", "llm_response")


class Client:
    """One keep-alive connection to the proxy, for one load thread."""

    def __init__(self, p):
        self.p = p
        self.c = None

    def chat(self, rid, i):
        import http.client
        if self.c is None:
            self.c = http.client.HTTPConnection("127.0.0.1", self.p.port, timeout=30)
        try:
            self.c.request("POST", "/v1/chat/completions?mock=rj", body=CHAT % i,
                           headers={"Authorization": "Bearer " + self.p.key,
                                    "Content-Type": "application/json",
                                    "X-Request-Id": rid, "X-WhyOps-Signature": "off"})
            r = self.c.getresponse()
            r.read()
            if r.getheader("Connection", "").lower() == "close":
                self.close()
            return r.status
        except Exception:
            self.close()
            raise

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


def run_threads(fns):
    """Runs each function on its own thread; re-raises the first failure."""
    errors = []

    def wrap(fn):
        try:
            fn()
        except BaseException as e:  # reported below
            errors.append(e)
    ts = [threading.Thread(target=wrap, args=(fn,)) for fn in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


def events_by_request(r):
    """{(requestId, eventType): [eventId, ...]} and every eventId in order."""
    by, ids = {}, []
    for e in r.stream():
        pl = e["payload"]
        rid = pl.get("requestId") or pl.get("metadata", {}).get("requestId")
        by.setdefault((rid, pl["eventType"]), []).append(pl["eventId"])
        ids.append(pl["eventId"])
    return by, ids


def missing_events(r, rids):
    by, _ = events_by_request(r)
    return [(rid, t) for rid in rids for t in EXPECTED_TYPES if (rid, t) not in by]


def wait_all_delivered(r, rids, timeout, what):
    """Waits until every request has its events in the stream; returns the
    number of duplicated entries (the same eventId more than once)."""
    end = time.monotonic() + timeout
    while True:
        miss = missing_events(r, rids)
        if not miss or time.monotonic() > end:
            break
        time.sleep(0.25)
    check(not miss, f"{what}: {len(miss)} events missing after {timeout}s, e.g. {miss[:5]}")
    by, ids = events_by_request(r)
    dups = len(ids) - len(set(ids))
    print(f"     {what}: {len(ids)} entries, {len(set(ids))} distinct events, "
          f"{dups} duplicated entries", flush=True)
    return dups


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def test_redis_restart_under_load(ctx):
    """3000 calls from 16 threads; redis-server restarts after a third of
    them.  Every call's events end up in the stream (at least once)."""
    r = Redis(ctx.tmp)
    ctx.cleanup.append(r)
    p, spool = proxy_with_redis(ctx, r)
    scenarios(ctx.mock)
    n, threads = 3000, 16
    done = [0]
    lock = threading.Lock()
    third = threading.Event()
    rids = [f"rl-{i}" for i in range(n)]

    def worker(k):
        def run():
            c = Client(p)
            for i in range(k, n, threads):
                eq(c.chat(rids[i], i), 200, f"status of {rids[i]}")
                with lock:
                    done[0] += 1
                    if done[0] == n // 3:
                        third.set()
            c.close()
        return run

    def restarter():
        check(third.wait(60), "a third of the load done")
        r.stop()
        r.start()
        restarted.append(done[0])
    restarted = []
    t0 = time.monotonic()
    run_threads([worker(k) for k in range(threads)] + [restarter])
    took = time.monotonic() - t0
    print(f"     {n} calls in {took:.1f}s; redis restarted after call {n // 3}, "
          f"back after call {restarted[0]}", flush=True)
    dups = wait_all_delivered(r, rids, 30, "restart under load")
    log = p.log()
    check("connection lost" in log, "the lost connection is logged")
    check("reconnected after" in log, "the reconnection is logged")
    _, ids = events_by_request(r)
    eq(len(set(ids)), 2 * n, f"distinct events (two per call; {dups} duplicated entries)")


def test_redis_down_30s_under_steady_load(ctx):
    """50 calls/s for 40 s, redis-server stopped from second 5 to 35: calls
    are not slowed down, and every event arrives once Redis is back."""
    r = Redis(ctx.tmp)
    ctx.cleanup.append(r)
    p, spool = proxy_with_redis(ctx, r)
    scenarios(ctx.mock)
    rate, secs, threads = 50, 40.0, 4
    down_at, up_at = 5.0, 35.0
    n = int(rate * secs)
    rids = [f"ro-{i}" for i in range(n)]
    lat = [None] * n          # (start offset, seconds)
    spooled = []
    t0 = time.monotonic() + 0.2

    def worker(k):
        def run():
            c = Client(p)
            for i in range(k, n, threads):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                s = time.monotonic()
                eq(c.chat(rids[i], i), 200, f"status of {rids[i]}")
                lat[i] = (s - t0, time.monotonic() - s)
            c.close()
        return run

    def outage():
        time.sleep(max(0, t0 + down_at - time.monotonic()))
        r.stop()
        time.sleep(max(0, t0 + (down_at + up_at) / 2 - time.monotonic()))
        spooled.append(sum(os.path.getsize(os.path.join(spool, f))
                           for f in os.listdir(spool) if f.startswith("spool-")))
        time.sleep(max(0, t0 + up_at - time.monotonic()))
        r.start()
    run_threads([worker(k) for k in range(threads)] + [outage])
    before = [d for s, d in lat if 0.5 <= s < down_at]
    during = [d for s, d in lat if down_at + 0.5 <= s < up_at]
    after = [d for s, d in lat if s >= up_at]
    stats = {k: (percentile(v, 0.5) * 1000, percentile(v, 0.99) * 1000, len(v))
             for k, v in (("before", before), ("during", during), ("after", after))}
    print("     latency ms (p50, p99, calls): " +
          ", ".join(f"{k} {a:.1f}/{b:.1f}/{c}" for k, (a, b, c) in stats.items()) +
          f"; spool mid-outage {spooled[0]} bytes", flush=True)
    check(spooled[0] > 0, "events spooled while Redis is down")
    for q, idx in (("p50", 0), ("p99", 1)):
        limit = max(3 * stats["before"][idx], 50.0)
        check(stats["during"][idx] < limit,
              f"{q} while Redis is down {stats['during'][idx]:.1f} ms >= {limit:.1f} ms")
    wait_all_delivered(r, rids, 30, "30 s outage")
    _, ids = events_by_request(r)
    eq(len(set(ids)), 2 * n, "distinct events (two per call)")
    log = p.log()
    check("connection lost" in log and "reconnected after" in log, "outage logged")


def spool_frames(path):
    """[(offset, length of frame, payload)] of a spool segment (spool.c)."""
    import struct
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], 0
    while off + 16 <= len(data):
        eq(data[off:off + 4], b"\xffWSP", f"frame magic at {off} of {path}")
        n = struct.unpack_from("<I", data, off + 4)[0]
        out.append((off, 16 + n, data[off + 16:off + 16 + n]))
        off += 16 + n
    eq(off, len(data), f"{path} ends with a whole frame")
    return out


def test_spool_damage_reported_and_skipped(ctx):
    """Two runs with Redis down leave two spool segments; the second gets a
    flipped byte in a middle frame and a torn last frame.  The next start
    with Redis up logs both and delivers every intact event."""
    r = Redis(ctx.tmp)
    ctx.cleanup.append(r)
    r.stop()
    scenarios(ctx.mock)
    spool = os.path.join(ctx.tmp, "spool-damage")
    conf = f"sink = redis\nredis = 127.0.0.1:{r.port}\nspool_dir = {spool}\nredis_timeout = 300ms\n"
    rids = []
    for run in range(2):
        p = ctx.new_proxy(extra_events=conf)
        c = Client(p)
        for i in range(30):
            rids.append(f"rdmg-{run}-{i}")
            eq(c.chat(rids[-1], i), 200, "status")
        c.close()
        p.stop()          # the ring goes to the spool; Redis stays down
        check("stay in the spool" in p.log(), "the proxy says events stay in the spool")
    segs = sorted(f for f in os.listdir(spool) if f.startswith("spool-"))
    eq(len(segs), 2, f"one segment per run: {segs}")
    frames = {s: spool_frames(os.path.join(spool, s)) for s in segs}
    events = {s: [json.loads(pl)["payload"]["eventId"] for _, _, pl in fr] for s, fr in frames.items()}
    eq(sum(len(v) for v in events.values()), 2 * len(rids), "every event spooled")
    last = os.path.join(spool, segs[-1])
    fr = frames[segs[-1]]
    k = len(fr) // 2
    off_k, len_k, _ = fr[k]
    off_t, len_t, _ = fr[-1]
    with open(last, "r+b") as f:
        f.seek(off_k + 16 + (len_k - 16) // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0x01]))
        f.truncate(off_t + len_t - 5)
    lost = {events[segs[-1]][k], events[segs[-1]][-1]}
    want = [e for s in segs for e in events[s] if e not in lost]
    r.start()
    p = ctx.new_proxy(extra_events=conf)

    def delivered():
        got = {e["payload"]["eventId"] for e in r.stream()}
        return got if got >= set(want) else None
    got = wait_for(delivered, 15, step=0.1, what="every intact spooled event in Redis")
    eq(got & lost, set(), "damaged events are not delivered")
    eq(len(got), len(want), "nothing but the intact events")
    name = f"{spool}/{segs[-1]}"
    log = wait_for(lambda: (lambda t: t if "torn tail" in t and "corrupt data" in t else None)(p.log()),
                   5, what="the damage in the log")
    check(f"{name}: corrupt data at offset {off_k}, {len_k} bytes (about 1 events lost) skipped" in log,
          "corruption logged with its offset:\n" + "\n".join(l for l in log.splitlines() if "spool" in l))
    check(f"{name}: torn tail at offset {off_t}, {len_t - 5} bytes skipped" in log,
          "torn tail logged with its offset:\n" + "\n".join(l for l in log.splitlines() if "spool" in l))
    wait_for(lambda: not any(f.startswith("spool-") for f in os.listdir(spool)), 5,
             what="delivered segments deleted")


def test_spool_full_drops_counted_and_logged(ctx):
    """With Redis down and spool_max_size = 1M, what does not fit is
    dropped; the log counts every dropped event, and everything stored is
    delivered once Redis is back."""
    import re
    r = Redis(ctx.tmp)
    ctx.cleanup.append(r)
    r.stop()
    scenarios(ctx.mock)
    spool = os.path.join(ctx.tmp, "spool-full")
    conf = (f"sink = redis\nredis = 127.0.0.1:{r.port}\nspool_dir = {spool}\n"
            "spool_max_size = 1M\nredis_timeout = 300ms\n")
    p = ctx.new_proxy(extra_events=conf)
    n, threads = 1500, 8          # 3000 events of about 1K: 3M

    def worker(k):
        def run():
            c = Client(p)
            for i in range(k, n, threads):
                eq(c.chat(f"rfull-{i}", i), 200, "status")
            c.close()
        return run
    run_threads([worker(k) for k in range(threads)])
    p.stop()
    segs = sorted(f for f in os.listdir(spool) if f.startswith("spool-"))
    size = sum(os.path.getsize(os.path.join(spool, f)) for f in segs)
    check(size <= 1 << 20, f"the spool stays within spool_max_size: {size} bytes")
    stored = [json.loads(pl)["payload"]["eventId"] for s in segs
              for _, _, pl in spool_frames(os.path.join(spool, s))]
    log = p.log()
    dropped = sum(int(m) for m in re.findall(r"spool full \((\d+) events dropped\)", log))
    dropped += sum(int(m) for m in re.findall(r"(\d+) more events dropped since the last report", log))
    print(f"     {2 * n} events: {len(stored)} spooled in {len(segs)} segments "
          f"({size} bytes), {dropped} dropped as logged", flush=True)
    check(0 < len(stored) < 2 * n, "the spool filled up")
    eq(len(stored) + dropped, 2 * n, "every event is either spooled or counted as dropped in the log")
    r.start()
    p2 = ctx.new_proxy(extra_events=conf)
    got = wait_for(lambda: (lambda g: g if len(g) >= len(stored) else None)(
        [e["payload"]["eventId"] for e in r.stream()]), 15, what="the spooled events in Redis")
    eq(set(got), set(stored), "exactly what was spooled is delivered")
