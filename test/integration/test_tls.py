"""Inbound TLS: [server] tls_cert_file / tls_key_file make the listener speak
HTTPS.  Certificates come from certtool (a test CA signs the server
certificate; the file holds the chain, leaf first).  curl and the Node SDK
talk to it, -t rejects a key that does not match, and SIGHUP swaps the
certificate for new connections."""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

from harness import BIN, check, eq, read_to_eof, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
SDK_DIR = os.path.normpath(os.path.join(HERE, "..", "sdk"))


def certtool(*args):
    subprocess.run(["certtool", *args], check=True, capture_output=True)


def make_pki(tmp, name):
    """A CA and a server certificate for 127.0.0.1 it signed.  Returns
    (ca.pem, chain.pem (leaf + CA), key.pem)."""
    check(shutil.which("certtool"), "certtool (gnutls-bin) is installed")
    d = os.path.join(tmp, "pki-" + name)
    os.makedirs(d, exist_ok=True)
    p = lambda f: os.path.join(d, f)  # noqa: E731
    with open(p("ca.tpl"), "w") as f:
        f.write(f'cn = "whyops test CA {name}"\nca\ncert_signing_key\nexpiration_days = 30\n')
    with open(p("srv.tpl"), "w") as f:
        f.write(f'cn = "whyops test server {name}"\ndns_name = "localhost"\n'
                'ip_address = "127.0.0.1"\nexpiration_days = 30\ntls_www_server\n'
                'encryption_key\nsigning_key\n')
    certtool("--generate-privkey", "--key-type", "ecdsa", "--outfile", p("ca-key.pem"))
    certtool("--generate-self-signed", "--load-privkey", p("ca-key.pem"),
             "--template", p("ca.tpl"), "--outfile", p("ca.pem"))
    certtool("--generate-privkey", "--key-type", "ecdsa", "--outfile", p("key.pem"))
    certtool("--generate-certificate", "--load-privkey", p("key.pem"),
             "--load-ca-certificate", p("ca.pem"), "--load-ca-privkey", p("ca-key.pem"),
             "--template", p("srv.tpl"), "--outfile", p("leaf.pem"))
    with open(p("chain.pem"), "w") as f:
        f.write(open(p("leaf.pem")).read() + open(p("ca.pem")).read())
    return p("ca.pem"), p("chain.pem"), p("key.pem")


_pki = {}


def pki(ctx, name):
    if name not in _pki:
        _pki[name] = make_pki(ctx.tmp, name)
    return _pki[name]


def tls_proxy(ctx, cert, key):
    return ctx.new_proxy(extra_server=f"tls_cert_file = {cert}\ntls_key_file = {key}")


def curl(p, ca, path, body, *extra):
    r = subprocess.run(["curl", "-sS", "--cacert", ca, "-o", "-", "-w", "\n%{http_code}",
                        "-H", f"Authorization: Bearer {p.key}", "-H", "Content-Type: application/json",
                        "--data-binary", body, *extra, f"https://127.0.0.1:{p.port}{path}"],
                       capture_output=True, timeout=20)
    check(r.returncode == 0, f"curl failed: {r.stderr.decode()}")
    out, _, code = r.stdout.rpartition(b"\n")
    return int(code), out


def peer_cn(port, ca):
    """The CN of the certificate a new connection gets, verified against ca
    (raises ssl.SSLError when ca did not sign it)."""
    c = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with c.wrap_socket(s, server_hostname="127.0.0.1") as t:
            subj = dict(x[0] for x in t.getpeercert()["subject"])
            return subj["commonName"]


def test_tls_curl_plain_and_streamed(ctx):
    ca, chain, key = pki(ctx, "a")
    m = ctx.mock
    m.scenario("in-tls-json", 'header Content-Type: application/json\nbody {"ok":true}\n')
    m.scenario("in-tls-sse", "header Content-Type: text/event-stream\nframing chunked\n"
               "split-events\npace 5\nbody data: a\\n\\ndata: b\\n\\ndata: [DONE]\\n\\n\n")
    p = tls_proxy(ctx, chain, key)
    check("listening on https://" in p.log(), "the log says https")
    st, data = curl(p, ca, "/v1/chat/completions?mock=in-tls-json", '{"model":"gpt-4o"}')
    eq(st, 200, "status over inbound TLS")
    eq(data, b'{"ok":true}', "body over inbound TLS")
    st, data = curl(p, ca, "/v1/chat/completions?mock=in-tls-sse",
                    '{"model":"gpt-4o","stream":true}', "-N")
    eq(st, 200, "stream status over inbound TLS")
    eq(data, b"data: a\n\ndata: b\n\ndata: [DONE]\n\n", "stream over inbound TLS")
    # Plain HTTP on the TLS port gets no answer in clear text.
    try:
        s = socket.create_connection(("127.0.0.1", p.port), timeout=3)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        got = s.recv(100)
        s.close()
    except OSError:
        got = b""
    check(not got.startswith(b"HTTP/1.1 200"), "plain HTTP is not served on the TLS port")


def run_sdk_script(script, ca, base, key):
    """Runs a Node SDK script (env B: base URL, K: key; the CA trusted) and
    checks the JSON line it prints: {"text", "stream"} as served by the
    mock.  The answers carry the invisible trace signature after the text."""
    env = dict(os.environ, NODE_EXTRA_CA_CERTS=ca, B=base, K=key)
    r = subprocess.run(["node", "--input-type=module", "-e", script], cwd=SDK_DIR, env=env,
                       capture_output=True, timeout=60)
    check(r.returncode == 0, f"node failed: {r.stderr.decode()[-2000:]}")
    got = json.loads(r.stdout.decode().strip().splitlines()[-1])
    check(got["text"].startswith("over TLS"), f"SDK answer over TLS: {got!r}")
    check(got["stream"].startswith("streamed"), f"SDK stream over TLS: {got!r}")


def test_tls_node_sdk(ctx):
    check(shutil.which("node") and os.path.isdir(os.path.join(SDK_DIR, "node_modules", "openai")),
          "node and test/sdk/node_modules (npm ci) are present")
    ca, chain, key = pki(ctx, "a")
    m = ctx.mock
    answer = {"id": "chatcmpl-tls", "object": "chat.completion", "created": 1, "model": "gpt-tlssdk",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "over TLS"},
                           "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    m.scenario("gpt-tlssdk", "header Content-Type: application/json\nbody " + json.dumps(answer) + "\n")
    chunks = [{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-tlsstream",
               "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]}
              for t in ("str", "eamed")]
    body = "".join("data: " + json.dumps(c) + "\\n\\n" for c in chunks) + "data: [DONE]\\n\\n"
    m.scenario("gpt-tlsstream", "header Content-Type: text/event-stream\nframing chunked\n"
               "split-events\nbody " + body + "\n")
    p = tls_proxy(ctx, chain, key)
    script = """
import OpenAI from 'openai';
const c = new OpenAI({ baseURL: process.env.B, apiKey: process.env.K, maxRetries: 0 });
const r = await c.chat.completions.create({ model: 'gpt-tlssdk', messages: [{ role: 'user', content: 'hi' }] });
let s = '';
const st = await c.chat.completions.create({ model: 'gpt-tlsstream', stream: true, messages: [{ role: 'user', content: 'hi' }] });
for await (const ch of st) s += ch.choices[0]?.delta?.content ?? '';
console.log(JSON.stringify({ text: r.choices[0].message.content, stream: s }));
"""
    run_sdk_script(script, ca, f"https://127.0.0.1:{p.port}/v1", p.key)


def test_tls_anthropic_sdk(ctx):
    """The Anthropic SDK (x-api-key) through the HTTPS listener: a message
    and a stream, both with the text intact."""
    check(shutil.which("node") and os.path.isdir(os.path.join(SDK_DIR, "node_modules", "@anthropic-ai", "sdk")),
          "node and test/sdk/node_modules (npm ci) are present")
    ca, chain, key = pki(ctx, "a")
    m = ctx.mock
    usage = {"input_tokens": 4, "output_tokens": 3}
    answer = {"id": "msg_tls", "type": "message", "role": "assistant", "model": "claude-tlssdk",
              "content": [{"type": "text", "text": "over TLS"}], "stop_reason": "end_turn",
              "stop_sequence": None, "usage": usage}
    m.scenario("claude-tlssdk", "header Content-Type: application/json\nbody " + json.dumps(answer) + "\n")
    evs = [("message_start", {"type": "message_start", "message": dict(answer, id="msg_tls2", model="claude-tlsstream",
                                                                      content=[], stop_reason=None)}),
           ("content_block_start", {"type": "content_block_start", "index": 0,
                                    "content_block": {"type": "text", "text": ""}})]
    evs += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": t}}) for t in ("str", "eamed")]
    evs += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": 2}}),
            ("message_stop", {"type": "message_stop"})]
    body = "".join(f"event: {name}\\ndata: {json.dumps(d)}\\n\\n" for name, d in evs)
    m.scenario("claude-tlsstream", "header Content-Type: text/event-stream\nframing chunked\n"
               "split-events\nbody " + body + "\n")
    p = tls_proxy(ctx, chain, key)
    script = """
import Anthropic from '@anthropic-ai/sdk';
const c = new Anthropic({ baseURL: process.env.B, apiKey: process.env.K, maxRetries: 0 });
const r = await c.messages.create({ model: 'claude-tlssdk', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });
let s = '';
const st = await c.messages.create({ model: 'claude-tlsstream', max_tokens: 16, stream: true, messages: [{ role: 'user', content: 'hi' }] });
for await (const ev of st) if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') s += ev.delta.text;
console.log(JSON.stringify({ text: r.content[0].text, stream: s }));
"""
    run_sdk_script(script, ca, f"https://127.0.0.1:{p.port}", p.key)
    rec = [x for x in m.records() if "claude-tlssdk" in x.get("body", "")]
    check(rec and rec[-1]["path"] == "/v1/messages", "forwarded to the Anthropic messages endpoint")


def test_tls_mismatched_key_rejected_by_t(ctx):
    _, chain_a, _ = pki(ctx, "a")
    _, _, key_b = pki(ctx, "b")
    conf = os.path.join(ctx.tmp, "tls-bad.conf")
    base = open(ctx.proxy.conf).read()
    with open(conf, "w") as f:
        f.write(base.replace("[server]\n", f"[server]\ntls_cert_file = {chain_a}\n"
                             f"tls_key_file = {key_b}\n", 1))
    r = subprocess.run([BIN, "-t", "-c", conf], capture_output=True, timeout=20)
    err = r.stderr.decode()
    eq(r.returncode, 1, f"-t exit status ({err})")
    check(f"{conf}:3:" in err, f"error names file:line: {err}")
    check(chain_a in err and key_b in err and "does not match" in err,
          f"error names both files and the mismatch: {err}")
    # Not PEM at all.
    junk = os.path.join(ctx.tmp, "junk.pem")
    with open(junk, "w") as f:
        f.write("not a certificate\n")
    with open(conf, "w") as f:
        f.write(base.replace("[server]\n", f"[server]\ntls_cert_file = {junk}\n"
                             f"tls_key_file = {key_b}\n", 1))
    r = subprocess.run([BIN, "-t", "-c", conf], capture_output=True, timeout=20)
    eq(r.returncode, 1, "-t exit status for a non-PEM file")
    check(junk in r.stderr.decode(), f"error names the file: {r.stderr.decode()}")
    # Only one of the two.
    with open(conf, "w") as f:
        f.write(base.replace("[server]\n", f"[server]\ntls_cert_file = {chain_a}\n", 1))
    r = subprocess.run([BIN, "-t", "-c", conf], capture_output=True, timeout=20)
    eq(r.returncode, 1, "-t exit status with the key missing")
    check("tls_key_file" in r.stderr.decode(), f"error names tls_key_file: {r.stderr.decode()}")


def test_tls_sighup_rotates_certificate(ctx):
    ca_a, chain_a, key_a = pki(ctx, "a")
    ca_b, chain_b, key_b = pki(ctx, "b")
    d = os.path.join(ctx.tmp, "live")
    os.makedirs(d, exist_ok=True)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    shutil.copy(chain_a, cert)
    shutil.copy(key_a, key)
    p = tls_proxy(ctx, cert, key)
    eq(peer_cn(p.port, ca_a), "whyops test server a", "certificate before the rotation")
    # A connection opened before the rotation keeps working after it.
    c = ssl.create_default_context(cafile=ca_a)
    old = c.wrap_socket(socket.create_connection(("127.0.0.1", p.port), timeout=5),
                        server_hostname="127.0.0.1")
    shutil.copy(chain_b, cert)
    shutil.copy(key_b, key)
    p.signal(signal.SIGHUP)

    def rotated():
        try:
            return peer_cn(p.port, ca_b)
        except ssl.SSLError:
            return None
    eq(wait_for(rotated, 5, what="cert B"), "whyops test server b", "certificate after SIGHUP")
    try:
        peer_cn(p.port, ca_a)
        check(False, "a new connection still got cert A")
    except ssl.SSLError:
        pass
    old.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = read_to_eof(old)
    old.close()
    check(got.startswith(b"HTTP/1.1 200"), f"the old connection still answers: {got[:100]!r}")
    # A broken pair on SIGHUP keeps cert B.
    with open(key, "w") as f:
        f.write("garbage\n")
    p.signal(signal.SIGHUP)
    wait_for(lambda: "keeping the current" in p.log(), 5, what="the reload error")
    eq(peer_cn(p.port, ca_b), "whyops test server b", "certificate after a bad SIGHUP")
