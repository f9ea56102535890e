"""SIGHUP reloads the configuration: new keys and provider settings apply to
new requests at once, a stream open across the reload completes intact, a
broken file leaves the old configuration serving (file:line in the log), and
a changed listen address is logged as needing a restart."""
TSAN = True

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
    buf = rest
    while b"0\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
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
