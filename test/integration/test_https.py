"""An HTTPS upstream: nginx with a self-signed certificate (certtool) in front
of the mock, named by ca_file.  Requests and streams work, an untrusted
certificate is a 502, and a burst of new streams all start on time."""
import asyncio
import os
import shutil
import socket
import subprocess
import time

from harness import check, eq, error_shape, wait_for, SAN

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream mock {{ server 127.0.0.1:{mock}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {tmp}/cert.pem;
        ssl_certificate_key {tmp}/key.pem;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Nginx:
    def __init__(self, tmp, mock_port):
        self.tmp = os.path.join(tmp, "nginx")
        os.makedirs(self.tmp, exist_ok=True)
        tpl = os.path.join(self.tmp, "cert.tpl")
        with open(tpl, "w") as f:
            f.write('cn = "localhost"\ndns_name = "localhost"\nip_address = "127.0.0.1"\n'
                    "expiration_days = 30\ntls_www_server\nencryption_key\nsigning_key\n")
        subprocess.run(["certtool", "--generate-privkey", "--key-type", "ecdsa",
                        "--outfile", os.path.join(self.tmp, "key.pem")],
                       check=True, capture_output=True)
        subprocess.run(["certtool", "--generate-self-signed", "--load-privkey",
                        os.path.join(self.tmp, "key.pem"), "--template", tpl,
                        "--outfile", os.path.join(self.tmp, "cert.pem")],
                       check=True, capture_output=True)
        self.ca = os.path.join(self.tmp, "cert.pem")
        self.port = free_port()
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=self.tmp, mock=mock_port, port=self.port))
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-e", os.path.join(self.tmp, "err.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                check(self.proc.poll() is None, "nginx exited: " + self.errors())
                return False
        wait_for(up, 10, what="nginx")
        self.url = f"https://localhost:{self.port}"

    def errors(self):
        p = os.path.join(self.tmp, "nginx-error.log")
        return open(p).read() if os.path.exists(p) else ""

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


_nginx = None


def nginx(ctx):
    global _nginx
    if _nginx is None:
        check(shutil.which("nginx") and shutil.which("certtool"), "nginx and certtool are installed")
        _nginx = Nginx(ctx.tmp, ctx.mock.port)
        ctx.cleanup.append(_nginx)
    return _nginx


def test_https_requests_and_streams(ctx):
    n = nginx(ctx)
    m = ctx.mock
    m.scenario("tls-json", 'header Content-Type: application/json\nbody {"ok":true}\n')
    m.scenario("tls-sse", "header Content-Type: text/event-stream\nframing chunked\nsplit-events\npace 5\n"
               "body data: a\\n\\ndata: b\\n\\ndata: [DONE]\\n\\n\n")
    p = ctx.new_proxy(upstream=n.url, extra_upstream=f"ca_file = {n.ca}")
    st, _, data = p.post("/v1/chat/completions?mock=tls-json", '{"model":"gpt-4o"}')
    eq(st, 200, "status over TLS")
    eq(data, b'{"ok":true}', "body over TLS")
    st, _, data = p.post("/v1/chat/completions?mock=tls-sse", '{"model":"gpt-4o","stream":true}')
    eq(st, 200, "stream status over TLS")
    eq(data, b"data: a\n\ndata: b\n\ndata: [DONE]\n\n", "stream over TLS")


def test_https_untrusted_certificate_is_502(ctx):
    n = nginx(ctx)
    p = ctx.new_proxy(upstream=n.url)  # system trust store: self-signed is refused
    st, r, data = p.post("/v1/chat/completions?mock=tls-json", '{"model":"gpt-4o"}')
    eq(st, 502, "status")
    msg = error_shape(data, "openai")
    check("SSL" in msg or "certificate" in msg.lower() or "TLS" in msg, f"message names TLS: {msg}")


async def _first_event(port, key, results):
    t0 = time.monotonic()
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        body = '{"model":"gpt-4o","stream":true}'
        w.write((f"POST /v1/chat/completions?mock=tls-burst HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Bearer {key}\r\nConnection: close\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
        await w.drain()
        buf = b""
        while b"data: first" not in buf:
            chunk = await asyncio.wait_for(r.read(4096), 20)
            if not chunk:
                break
            buf += chunk
        results.append(time.monotonic() - t0 if b"data: first" in buf else None)
        rest = await asyncio.wait_for(r.read(), 20)
        w.close()
    except Exception as e:
        results.append(repr(e))


def test_https_burst_of_200_streams_start_on_time(ctx):
    n = nginx(ctx)
    m = ctx.mock
    m.scenario("tls-burst", "header Content-Type: text/event-stream\nframing chunked\nsplit-events\n"
               "first-piece-delay 100\npace 200\nbody data: first\\n\\ndata: second\\n\\n\n")
    p = ctx.new_proxy(upstream=n.url, extra_upstream=f"ca_file = {n.ca}")
    results = []

    async def run():
        await asyncio.gather(*[_first_event(p.port, p.key, results) for _ in range(200)])
    asyncio.run(run())
    times = [t for t in results if isinstance(t, float)]
    eq(len(times), 200, f"every stream got its first event ({[r for r in results if not isinstance(r, float)][:3]})")
    times.sort()
    p99 = times[int(len(times) * 0.99) - 1]
    limit = 1.5 if not SAN else 4.0
    check(p99 < limit, f"first event p50 {times[100] * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
