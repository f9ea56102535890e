"""[server] metrics_listen: /metrics, /healthz and /readyz on a second,
plain-HTTP listener; /metrics on the main listener is then a 404 in the
OpenAI error shape; a port that cannot be bound stops the start with exit
status 1; a reload that changes the address is logged as needing a restart."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess

from harness import BIN, SAN, check, eq, error_shape, wait_for
from test_metrics import parse_metrics, serve, val

# The metrics listener's thread renders while the pool serves requests.
TSAN = True


def metrics_port(p):
    m = re.search(r"metrics listener on http://[^ ]*:(\d+) ", p.log())
    check(m is not None, "metrics listener in the log:\n" + p.log()[-2000:])
    return int(m.group(1))


def get(port, path, method="GET", body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        return r.status, r, r.read()
    finally:
        c.close()


def scrape(port):
    st, r, data = get(port, "/metrics")
    eq(st, 200, "/metrics on the metrics port")
    check(r.getheader("Content-Type", "").startswith("text/plain; version=0.0.4"),
          f"Content-Type {r.getheader('Content-Type')}")
    return parse_metrics(data.decode("utf-8"))[0]


def proxy(ctx):
    if not hasattr(ctx, "ml_proxy"):
        ctx.ml_proxy = ctx.new_proxy(extra_server="metrics_listen = 127.0.0.1:0")
        ctx.ml_port = metrics_port(ctx.ml_proxy)
        check(ctx.ml_port != ctx.ml_proxy.port, "two listeners, two ports")
    return ctx.ml_proxy, ctx.ml_port


def test_metrics_on_their_own_port(ctx):
    p, mport = proxy(ctx)
    serve(ctx.mock, "ml-chat", "chat-n2.json", False)
    ok = dict(route="chat.completions", status_class="2xx", provider="openai")
    before = val(scrape(mport), "whyops_requests_total", **ok)
    st, _, _ = p.post("/v1/chat/completions?mock=ml-chat",
                      '{"model":"gpt-4o-mini","messages":[]}')
    eq(st, 200, "proxied request on the main port")
    wait_for(lambda: val(scrape(mport), "whyops_requests_total", **ok) == before + 1,
             5, 0.05, "the request counter to move on the metrics port")
    st, r, _ = get(mport, "/metrics", method="HEAD")
    eq(st, 200, "HEAD /metrics")


def test_main_port_has_no_metrics(ctx):
    p, _ = proxy(ctx)
    for method in ("GET", "HEAD"):
        st, r, body = p.request(method, "/metrics", key=False)
        eq(st, 404, f"{method} /metrics on the main port")
        eq(r.getheader("Content-Type"), "application/json", "Content-Type")
    st, _, body = p.request("GET", "/metrics", key=False)
    eq(error_shape(body, "openai"), "unknown path /metrics", "message")
    eq(json.loads(body)["error"]["code"], "not_found", "code")
    # The probes stay on the main listener too.
    st, _, body = p.request("GET", "/healthz", key=False)
    eq((st, json.loads(body)), (200, {"status": "ok"}), "/healthz on the main port")
    st, _, body = p.request("GET", "/readyz", key=False)
    eq((st, json.loads(body)), (200, {"status": "ready"}), "/readyz on the main port")


def test_probes_on_metrics_port(ctx):
    _, mport = proxy(ctx)
    st, r, body = get(mport, "/healthz")
    eq((st, json.loads(body)), (200, {"status": "ok"}), "/healthz")
    eq(r.getheader("Content-Type"), "application/json", "/healthz Content-Type")
    st, r, body = get(mport, "/readyz")
    eq((st, json.loads(body)), (200, {"status": "ready"}), "/readyz")
    # Nothing else: not the API, not the /v1 spellings.
    for path in ("/v1/chat/completions", "/v1/metrics", "/nowhere"):
        st, _, body = get(mport, path)
        eq(st, 404, f"{path} on the metrics port")
        error_shape(body, "openai")
    st, _, body = get(mport, "/v1/chat/completions", method="POST",
                      body='{"model":"gpt-4o-mini"}')
    eq(st, 404, "POST to the API on the metrics port")
    st, r, body = get(mport, "/metrics", method="POST", body="x" * 10000)
    eq(st, 405, "POST /metrics")
    eq(r.getheader("Allow"), "GET, HEAD", "Allow")
    error_shape(body, "openai")
    # Keep-alive: several requests on one connection.
    c = http.client.HTTPConnection("127.0.0.1", mport, timeout=10)
    try:
        for path in ("/healthz", "/metrics", "/readyz"):
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            eq(r.status, 200, f"{path} on a kept-alive connection")
    finally:
        c.close()


def test_reload_change_needs_restart(ctx):
    p = ctx.new_proxy(extra_server="metrics_listen = 127.0.0.1:0")
    mport = metrics_port(p)
    text = open(p.conf).read()
    with open(p.conf, "w") as f:
        f.write(text.replace("metrics_listen = 127.0.0.1:0", "metrics_listen = 127.0.0.1:1"))
    n = p.log().count("loaded (")
    p.signal(signal.SIGHUP)
    wait_for(lambda: p.log().count("loaded (") > n, 5, what="the reload")
    check("[server] metrics_listen changed: needs a restart" in p.log(),
          "log says metrics_listen needs a restart")
    scrape(mport)
    st, _, _ = p.request("GET", "/metrics", key=False)
    eq(st, 404, "the main port still has no /metrics")


def write_conf(ctx, server):
    path = os.path.join(ctx.tmp, "ml-%d.conf" % len(os.listdir(ctx.tmp)))
    with open(path, "w") as f:
        f.write("[server]\n" + server + "[events]\nsink = none\n")
    return path


def run_proxy(args, timeout):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    return subprocess.run([BIN] + args, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_port_taken_fails_start(ctx):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen()
    taken = s.getsockname()[1]
    try:
        conf = write_conf(ctx, f"listen = 127.0.0.1:0\nmetrics_listen = 127.0.0.1:{taken}\n")
        r = run_proxy(["-c", conf], 30 if SAN else 10)
    finally:
        s.close()
    eq(r.returncode, 1, f"exit status; stderr:\n{r.stderr}")
    check(f"error metrics_listen on 127.0.0.1 port {taken}: Address already in use"
          in r.stderr, f"clear message:\n{r.stderr}")
    check("ready (config" not in r.stderr, "never reported ready")
    for pat in ("ERROR: AddressSanitizer", "runtime error:", "WARNING: ThreadSanitizer",
                "ERROR: LeakSanitizer", "MHD_stop_daemon"):
        check(pat not in r.stderr, f"{pat} in stderr:\n{r.stderr}")


def test_same_port_is_config_error(ctx):
    conf = write_conf(ctx, "listen = 127.0.0.1:9464\nmetrics_listen = [::1]:9464\n")
    r = run_proxy(["-t", "-c", conf], 30 if SAN else 10)
    eq(r.returncode, 1, "-t exit status")
    eq(r.stderr, f"{conf}:3: [server] metrics_listen: port 9464 is listen's port too; "
       "the metrics listener needs a port of its own\n", "-t output")


def test_probes_answer_through_the_drain(ctx):
    """After SIGTERM the metrics port still answers: /readyz says
    shutting_down while a stream finishes, /healthz stays 200."""
    p = ctx.new_proxy(extra_server="metrics_listen = 127.0.0.1:0\ndrain_timeout = 10s")
    mport = metrics_port(p)
    ctx.mock.scenario("ml-drain", "header Content-Type: text/event-stream\nframing chunked\n"
                      "split-events\npace 300\nbody " + "data: {\\\"choices\\\":[]}\\n\\n" * 5 +
                      "data: [DONE]\\n\\n\n")
    body = '{"model":"gpt-4o","stream":true,"messages":[]}'
    s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    s.sendall((f"POST /v1/chat/completions?mock=ml-drain HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {p.key}\r\nConnection: close\r\n"
               f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
    check(s.recv(65536).startswith(b"HTTP/1.1 200"), "stream started")
    eq(get(mport, "/readyz")[0], 200, "ready before the signal")
    at = len(p.log())
    p.signal(signal.SIGTERM)
    wait_for(lambda: "waiting up to" in p.log()[at:], 5, what="the drain to start")
    st, _, data = get(mport, "/readyz")
    eq((st, json.loads(data)), (503, {"status": "not_ready", "reason": "shutting_down"}),
       "/readyz during the drain")
    eq(get(mport, "/healthz")[0], 200, "/healthz during the drain")
    while s.recv(65536):
        pass
    s.close()
    p.proc.wait(15)
    ctx.cleanup.remove(p)
    p.stop()
