"""systemd readiness: READY=1 once serving, RELOADING=1 + READY=1 around a
SIGHUP, STOPPING=1 at shutdown, sent to $NOTIFY_SOCKET (path or abstract)."""
import os
import re
import signal
import socket
import time

import harness
from harness import check, eq

TSAN = True


def run_with(ctx, addr, env_value):
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(addr)
    rx.settimeout(10)
    old = os.environ.get("NOTIFY_SOCKET")
    os.environ["NOTIFY_SOCKET"] = env_value
    try:
        p = ctx.new_proxy()
    finally:
        if old is None:
            del os.environ["NOTIFY_SOCKET"]
        else:
            os.environ["NOTIFY_SOCKET"] = old
    recv = lambda: rx.recv(4096).decode()
    eq(recv(), f"STATUS=serving on 127.0.0.1 port {p.port}", "status")
    eq(recv(), "READY=1", "ready")
    t0 = time.clock_gettime(time.CLOCK_MONOTONIC)
    p.signal(signal.SIGHUP)
    m = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)", recv())
    check(m is not None, "RELOADING=1 with MONOTONIC_USEC")
    check(int(m.group(1)) >= int(t0 * 1e6) - 1, "monotonic timestamp")
    eq(recv(), "READY=1", "ready again after the reload")
    ctx.cleanup.remove(p)
    p.signal(signal.SIGTERM)
    eq(recv(), "STOPPING=1", "stopping")
    eq(recv(), "STATUS=shutting down", "status")
    p.stop()
    rx.close()


def test_notify_path_socket(ctx):
    path = os.path.join(ctx.tmp, "notify.sock")
    run_with(ctx, path, path)


def test_notify_abstract_socket(ctx):
    name = f"whyops-test-{os.getpid()}-{time.monotonic_ns()}"
    run_with(ctx, "\0" + name, "@" + name)
