"""Integration test harness: the real whyops-proxy binary against the C mock
upstream (test/mock) and, where needed, real nginx and redis-server.

Everything listens on 127.0.0.1 ports the kernel picks (bind to port 0 and read
it back): the mock prints its port, the proxy logs "listening on HOST:PORT".
A sanitizer report or a leaked secret in the proxy's stderr fails the test.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

BIN = os.environ.get("WHYOPS_BIN", os.path.abspath("whyops-proxy"))
MOCK = os.environ.get("WHYOPS_MOCK", os.path.abspath("build/mock-upstream"))
SAN = os.environ.get("WHYOPS_SAN", "")

# Secrets every test config uses; none may ever appear in a log line.
OPENAI_KEY = "sk-test-openai-" + secrets.token_hex(8)
ANTHROPIC_KEY = "sk-ant-test-" + secrets.token_hex(8)


class TestFailure(AssertionError):
    pass


def check(cond, msg="check failed"):
    if not cond:
        raise TestFailure(msg)


def eq(got, want, what="value"):
    if got != want:
        raise TestFailure(f"{what}: got {got!r}, want {want!r}")


def wait_for(pred, timeout=5.0, step=0.01, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise TestFailure(f"timed out after {timeout}s waiting for {what}")


def new_key():
    k = "whyops_" + secrets.token_urlsafe(24).replace("-", "a").replace("_", "b")[:32]
    return k, hashlib.sha256(k.encode()).hexdigest()


class Mock:
    """The scripted C mock upstream (see test/mock/README.md)."""

    def __init__(self, tmp):
        self.dir = tempfile.mkdtemp(prefix="scn-", dir=tmp)
        self.rec = tempfile.mkdtemp(prefix="rec-", dir=tmp)
        self.proc = subprocess.Popen([MOCK, "-d", self.dir, "-r", self.rec],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        check(line.strip().isdigit(), f"mock did not print its port: {line!r}")
        self.port = int(line)
        self.url = f"http://127.0.0.1:{self.port}"

    def scenario(self, name, text):
        with open(os.path.join(self.dir, name + ".scn"), "w") as f:
            f.write(text)

    def file(self, name, data):
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(os.path.join(self.dir, name), mode) as f:
            f.write(data)

    def records(self):
        out = []
        for n in sorted(os.listdir(self.rec)):
            if n.endswith(".json") and not n.startswith("."):
                with open(os.path.join(self.rec, n)) as f:
                    out.append(json.load(f))
        return out

    def last(self, timeout=3.0):
        wait_for(lambda: self.records(), timeout, what="a request at the mock")
        return self.records()[-1]

    def done(self, seq, timeout=5.0):
        p = os.path.join(self.rec, "%06d.done" % seq)
        wait_for(lambda: os.path.exists(p), timeout, what=f"mock record {seq} to end")
        with open(p) as f:
            return json.load(f)

    def clear(self):
        # The mock may be renaming a record's temp file right now.
        for n in os.listdir(self.rec):
            try:
                os.unlink(os.path.join(self.rec, n))
            except FileNotFoundError:
                pass

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def header(rec, name):
    """All values of a header in a mock record, case-insensitively."""
    return [v for k, v in rec["headers"] if k.lower() == name.lower()]


class Proxy:
    """A whyops-proxy process with a generated configuration."""

    def __init__(self, tmp, upstream, extra_server="", extra_upstream="",
                 providers=None, environments=None, keys=None, anthropic_upstream=None,
                 extra_events=""):
        self.tmp = tmp
        self.key, self.key_hash = new_key()
        self.key2, self.key2_hash = new_key()
        self.conf = os.path.join(tmp, "whyops-%s.conf" % secrets.token_hex(4))
        au = anthropic_upstream or upstream
        def section(name, defaults, extra):
            vals = dict(defaults)
            for line in extra.strip().splitlines():
                k, _, v = line.partition("=")
                vals[k.strip()] = v.strip()
            return f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in vals.items())
        text = section("server", {"listen": "127.0.0.1:0", "threads": "2", "log_level": "debug"},
                       extra_server)
        text += section("upstream", {"connect_timeout": "2s", "first_byte_timeout": "5s",
                                     "idle_timeout": "5s"}, extra_upstream)
        self.events_path = self.conf + ".events.jsonl"
        text += section("events", {"sink": "file", "file": self.events_path}, extra_events)
        text += providers if providers is not None else f"""
[provider openai]
type = openai
base_url = {upstream}/v1
api_key = {OPENAI_KEY}
models = gpt-* o1* text-embedding-*
header = OpenAI-Organization: org-from-config

[provider anthropic]
type = anthropic
base_url = {au}/v1
api_key = {ANTHROPIC_KEY}
models = claude-*

[provider local]
type = openai
base_url = {upstream}/local/v1
models = llama*

[provider other]
type = openai
base_url = {upstream}/other/v1
"""
        text += environments if environments is not None else """
[environment production]
project = acme
providers = openai anthropic local

[environment staging]
providers = local
"""
        text += keys if keys is not None else f"""
[key ci-agent]
sha256 = {self.key_hash}
environment = production
agent = support-bot

[key staging-agent]
sha256 = {self.key2_hash}
environment = staging
"""
        with open(self.conf, "w") as f:
            f.write(text)
        self.log_path = self.conf + ".log"
        self.start()

    def start(self):
        self.logf = open(self.log_path, "ab")
        env = dict(os.environ)
        # A small quarantine keeps RSS meaningful for the memory-bound tests.
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:quarantine_size_mb=8")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.proc = subprocess.Popen([BIN, "-c", self.conf], stdout=self.logf,
                                     stderr=self.logf, env=env)
        # The log is appended to across restarts: read only this start's part.
        # "ready" comes after every listener (the metrics one too) is up.
        start_at = os.path.getsize(self.log_path)
        def port():
            text = self.read_log_bytes()[start_at:]
            m = re.search(rb"listening on [^ ]*:(\d+) ", text)
            if self.proc.poll() is not None:
                raise TestFailure("proxy exited at start:\n" + self.log())
            if m is None or b" ready (config " not in text:
                return None
            return int(m.group(1))
        self.port = wait_for(port, 10 if SAN else 5, what="the proxy to listen")
        self.base = f"http://127.0.0.1:{self.port}"

    def read_log_bytes(self):
        with open(self.log_path, "rb") as f:
            return f.read()

    def log(self):
        return self.read_log_bytes().decode("utf-8", "replace")

    def events(self):
        """Every envelope written to the file sink so far."""
        if not os.path.exists(self.events_path):
            return []
        with open(self.events_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def events_for(self, request_id, count=None, timeout=5.0):
        """The payloads of one request's events, waiting for them to arrive."""
        def get():
            evs = [e["payload"] for e in self.events()
                   if e["payload"].get("metadata", {}).get("requestId") == request_id]
            if count is None:
                return evs if evs and evs[-1]["eventType"] in (
                    "llm_response", "error", "embedding_response") else None
            return evs if len(evs) >= count else None
        return wait_for(get, timeout, what=f"events of {request_id}")

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15):
        """SIGTERM; the proxy must exit 0 and its log must be clean."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise TestFailure("proxy did not exit within %ss of SIGTERM" % timeout)
        self.logf.close()
        self.check_log()
        if self.proc.returncode != 0:   # the log's end says why, in CI's output
            tail = "\n".join(self.log().splitlines()[-15:])
            raise TestFailure(f"proxy exit status: got {self.proc.returncode}, want 0; "
                              f"the log ends:\n{tail}")

    def check_log(self):
        text = self.log()
        for pat in ("ERROR: AddressSanitizer", "runtime error:", "WARNING: ThreadSanitizer",
                    "ERROR: LeakSanitizer", "MHD_stop_daemon", "Fatal error in GNU libmicrohttpd"):
            check(pat not in text, f"proxy log contains {pat!r}:\n{text[-4000:]}")
        for secret in (OPENAI_KEY, ANTHROPIC_KEY, self.key, self.key2):
            check(secret not in text, "a secret appears in the proxy log")

    # --- client helpers -------------------------------------------------

    def request(self, method, path, body=None, headers=None, key=True, timeout=10):
        """One request on a fresh connection; returns (status, headers, body)."""
        h = {}
        if key is True:
            h["Authorization"] = "Bearer " + self.key
        elif key:
            h["Authorization"] = "Bearer " + key
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, r, data
        finally:
            c.close()

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)


def error_shape(body, dialect):
    """Parses a proxy error body and checks its shape; returns the message."""
    j = json.loads(body)
    if dialect == "openai":
        check(set(j) == {"error"}, f"OpenAI error shape: {j}")
        e = j["error"]
        check({"message", "type", "code"} <= set(e), f"OpenAI error fields: {e}")
        check(isinstance(e["message"], str) and e["message"], "error message")
        return e["message"]
    eq(j.get("type"), "error", "Anthropic error type")
    e = j["error"]
    check({"type", "message"} <= set(e), f"Anthropic error fields: {e}")
    return e["message"]


def read_to_eof(s):
    """Everything read from socket s until the peer closes or s's timeout
    passes."""
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
    return out


def raw_request(port, data, timeout=5):
    """Sends raw bytes and returns everything read until the peer closes or
    the timeout passes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        return read_to_eof(s)
    finally:
        s.close()


def sse_events(body):
    """Splits an SSE body into events (each without its blank line)."""
    body = body.replace(b"\r\n", b"\n")
    return [e for e in body.split(b"\n\n") if e]
