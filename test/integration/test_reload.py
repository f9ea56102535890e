"""SIGHUP reloads the configuration: new keys and provider settings apply to
new requests at once, a stream open across the reload completes intact, a
broken file leaves the old configuration serving (file:line in the log), and
a changed listen address is logged as needing a restart; the [events] sink
and spool switch at once, without losing or repeating an event."""
TSAN = True

import json
import os
import signal
import threading
import time

from harness import check, eq, new_key, wait_for
from test_streaming import open_stream, paced_scenario


def rewrite(p, fn):
    text = open(p.conf).read()
    with open(p.conf, "w") as f:
        f.write(fn(text))


def hup_and_wait(p, marker="reload: "):
    n = p.log().count(marker)
    p.signal(signal.SIGHUP)
    wait_for(lambda: p.log().count(marker) > n, 5, what="the reload in the log")


def read_to_end(s, rest):
    """The rest of a chunked response on socket s (rest: bytes already
    read after the head), up to the last chunk; closes s."""
    buf = rest
    while b"0\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return buf


def test_reload_new_key_works_at_once(ctx):
    p = ctx.new_proxy()
    key, key_hash = new_key()
    hdr = {"Authorization": f"Bearer {key}"}
    st, _, _ = p.request("POST", "/v1/chat/completions", '{"model":"gpt-4o"}', headers=hdr, key=False)
    eq(st, 401, "unknown key before the reload")
    rewrite(p, lambda t: t + f"\n[key added]\nsha256 = {key_hash}\nenvironment = production\n")
    hup_and_wait(p, "loaded (")
    t0 = time.monotonic()
    st, _, body = p.request("POST", "/v1/chat/completions", '{"model":"gpt-4o"}', headers=hdr, key=False)
    eq(st, 200, f"new key after SIGHUP: {body[:200]!r}")
    check(time.monotonic() - t0 < 1.0, "answered within 1 s")
    st, _, _ = p.post("/v1/chat/completions", '{"model":"gpt-4o"}')
    eq(st, 200, "old key still works")


def test_reload_stream_in_flight_completes(ctx):
    m = ctx.mock
    p = ctx.new_proxy()
    want = paced_scenario(m, "reload-paced", 20, 50, 30).encode()
    s, head, rest = open_stream(p, "/v1/chat/completions?mock=reload-paced",
                                '{"model":"gpt-4o","stream":true}')
    check(b"200" in head.split(b"\r\n")[0], "status 200")
    # Change a timeout while the stream runs, and reload twice: the first
    # generation is freed only when the stream ends.
    rewrite(p, lambda t: t.replace("idle_timeout = 5s", "idle_timeout = 4s"))
    hup_and_wait(p, "loaded (")
    hup_and_wait(p, "loaded (")
    buf = read_to_end(s, rest)
    body = b""
    data = buf
    while data:  # de-chunk
        size, _, data = data.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        body += data[:n]
        data = data[n + 2:]
    check(body.startswith(want[:200]) and body.count(b"data: ") == want.count(b"data: "),
          f"stream intact across the reload ({body.count(b'data: ')} events)")


def test_reload_broken_config_keeps_old(ctx):
    p = ctx.new_proxy()
    good = open(p.conf).read()
    broken_line = good.split("\n").index("threads = 2") + 1
    rewrite(p, lambda t: t.replace("threads = 2", "threads = lots", 1))
    hup_and_wait(p, "keeping the current configuration")
    check(f"{p.conf}:{broken_line}:" in p.log(), f"log names file:line:\n{p.log()[-1500:]}")
    st, _, _ = p.post("/v1/chat/completions", '{"model":"gpt-4o"}')
    eq(st, 200, "old configuration still serving")


def test_reload_listen_change_needs_restart(ctx):
    p = ctx.new_proxy()
    rewrite(p, lambda t: t.replace("listen = 127.0.0.1:0", "listen = 127.0.0.1:1"))
    hup_and_wait(p, "loaded (")
    check("[server] listen changed: needs a restart" in p.log(), "log says listen needs a restart")
    st, _, _ = p.post("/v1/chat/completions", '{"model":"gpt-4o"}')
    eq(st, 200, "still serving on the old port")


def test_reload_provider_base_url(ctx):
    m = ctx.mock
    p = ctx.new_proxy()
    m.clear()
    st, _, _ = p.post("/v1/chat/completions", '{"model":"gpt-4o"}')
    eq(st, 200, "before")
    eq(m.last()["path"], "/v1/chat/completions", "upstream path before the reload")
    rewrite(p, lambda t: t.replace(f"base_url = {m.url}/v1\n", f"base_url = {m.url}/moved/v1\n", 1))
    hup_and_wait(p, "loaded (")
    m.clear()
    st, _, _ = p.post("/v1/chat/completions", '{"model":"gpt-4o"}')
    eq(st, 200, "after")
    eq(m.last()["path"], "/moved/v1/chat/completions", "upstream path after the reload")


# ---- [events] settings on reload ---------------------------------------

def events_in(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line)["payload"] for line in f if line.strip()]


def rids(evs):
    return [e["metadata"].get("requestId") for e in evs]


def chat(p, rid):
    st, _, body = p.post("/v1/chat/completions", '{"model":"gpt-4o"}',
                         headers={"X-Request-Id": rid})
    eq(st, 200, f"{rid}: {body[:200]!r}")


def test_reload_events_file_switch(ctx):
    """A new events file takes the events of requests made after the reload;
    the old file keeps what was written before; a stream open across the
    reload has all its events, exactly once, in one of the two."""
    m = ctx.mock
    p = ctx.new_proxy()
    old_path, new_path = p.events_path, p.events_path + ".new"
    chat(p, "sw-before")
    wait_for(lambda: "sw-before" in rids(events_in(old_path)), 5, what="sw-before in the old file")
    paced_scenario(m, "sw-paced", 15, 50, 30)
    s, head, rest = open_stream(p, "/v1/chat/completions?mock=sw-paced",
                                '{"model":"gpt-4o","stream":true}')
    check(b"200" in head.split(b"\r\n")[0], "stream status 200")
    rewrite(p, lambda t: t.replace(f"file = {old_path}\n", f"file = {new_path}\n"))
    hup_and_wait(p, "events now go to")
    check(f"the file sink, {new_path}" in p.log(), "log names the new file")
    chat(p, "sw-after")
    buf = read_to_end(s, rest)
    wait_for(lambda: "sw-after" in rids(events_in(new_path)), 5, what="sw-after in the new file")
    check("sw-after" not in rids(events_in(old_path)), "nothing after the reload in the old file")
    check("sw-before" not in rids(events_in(new_path)), "nothing from before in the new file")

    def stream_events():
        evs = [e for e in events_in(old_path) + events_in(new_path)
               if e["metadata"].get("endpoint") == "chat.completions"
               and e["metadata"].get("requestId") not in ("sw-before", "sw-after")]
        return evs if any(e["eventType"] == "llm_response" for e in evs) else None
    evs = wait_for(stream_events, 5, what="the stream's events")
    ids = [e["eventId"] for e in evs]
    eq(len(ids), len(set(ids)), "no event written twice")
    eq([e["eventType"] for e in evs], ["user_message", "llm_response"], "the stream's events")


def test_reload_events_bad_file_keeps_old_sink(ctx):
    p = ctx.new_proxy()
    # A directory: the parser accepts the path (its directory exists), the
    # dispatcher cannot open it.
    bad = os.path.join(ctx.tmp, "a-directory")
    os.makedirs(bad)
    rewrite(p, lambda t: t.replace(f"file = {p.events_path}\n", f"file = {bad}\n"))
    hup_and_wait(p, "sink settings stay as they were")
    check("cannot open file" in p.log(), "the log says why")
    chat(p, "bad-file-after")
    wait_for(lambda: "bad-file-after" in rids(events_in(p.events_path)), 5,
             what="events still in the old file")


def test_reload_events_to_redis_replays_old_spool(ctx):
    """Redis at the first address is down: events spool in dir1.  The reload
    points at a Redis that is up and at spool dir2: what dir1 holds is
    replayed into the new Redis first, then new events follow; nothing lost."""
    from test_redis import Redis, free_port
    dead = free_port()
    dir1, dir2 = os.path.join(ctx.tmp, "rl-spool1"), os.path.join(ctx.tmp, "rl-spool2")
    p = ctx.new_proxy(extra_events=f"sink = redis\nredis = 127.0.0.1:{dead}\n"
                      f"spool_dir = {dir1}\nredis_timeout = 200ms\n")
    for i in range(5):
        chat(p, f"spooled-{i}")
    wait_for(lambda: any(n.startswith("spool-") for n in os.listdir(dir1)), 5,
             what="events spooled in dir1")
    r = Redis(ctx.tmp)
    ctx.cleanup.append(r)
    rewrite(p, lambda t: t.replace(f"redis = 127.0.0.1:{dead}\n", f"redis = 127.0.0.1:{r.port}\n")
            .replace(f"spool_dir = {dir1}\n", f"spool_dir = {dir2}\n"))
    hup_and_wait(p, "events now go to")
    check(f"the spool in {dir1}" in p.log() and "replayed into the new sink first" in p.log(),
          "log says the old spool is replayed")
    for i in range(3):
        chat(p, f"fresh-{i}")
    want = {f"spooled-{i}" for i in range(5)} | {f"fresh-{i}" for i in range(3)}

    def delivered():
        got = [e["payload"]["metadata"].get("requestId") for e in r.stream()]
        return got if want <= set(got) else None
    got = wait_for(delivered, 15, what="spooled and fresh events in the new Redis")
    eq(len(got), 2 * len(want), "two events per request, none twice")
    wait_for(lambda: f"the spool in {dir1} has been replayed; closed" in p.log(), 5,
             what="the old spool closed once empty")
    r.stop()


def test_no_keys_warned(ctx):
    """A file without [key] sections is valid but refuses every request:
    -t, the start and a reload say so; with keys nothing is said."""
    import subprocess
    from harness import BIN
    base = open(ctx.proxy.conf).read()
    r = subprocess.run([BIN, "-t", "-c", ctx.proxy.conf], capture_output=True, timeout=20)
    eq(r.returncode, 0, "-t with keys")
    check("no [key] section" not in r.stderr.decode(), f"no warning with keys: {r.stderr!r}")
    keyless = os.path.join(ctx.tmp, "keyless.conf")
    with open(keyless, "w") as f:
        f.write(base[:base.index("\n[key ")] + "\n")
    r = subprocess.run([BIN, "-t", "-c", keyless], capture_output=True, timeout=20)
    eq(r.returncode, 0, f"-t without keys: {r.stderr!r}")
    eq(r.stdout.decode(), "configuration OK\n", "-t output")
    check(f"{keyless}:0: warning: no [key] section: every API request will be refused "
          "with 401" in r.stderr.decode(), f"warning: {r.stderr!r}")
    p = ctx.new_proxy()
    check("no [key] section" not in p.log(), "no warning at a start with keys")
    rewrite(p, lambda t: t[:t.index("\n[key ")] + "\n")
    hup_and_wait(p, "loaded (")
    check("reload: " + p.conf + ": no [key] section" in p.log(), f"reload warns:\n{p.log()[-1500:]}")
    st, _, _ = p.post("/v1/chat/completions", '{"model":"gpt-4o"}')
    eq(st, 401, "the old key is gone")
