"""The five endpoints, streamed and not: what the client gets and exactly what
the upstream receives."""
import json
import time

from harness import (ANTHROPIC_KEY, OPENAI_KEY, check, eq, header, sse_events)

TSAN = True

CHAT_JSON = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})

CHAT_SSE = "".join(
    f'data: {{"id":"c1","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":"w{i}"}}}}]}}\n\n'
    for i in range(8)) + "data: [DONE]\n\n"

# A realistic ~1.5 KB body whose number formatting must survive byte for byte.
def chat_body(model="gpt-4o", stream=False):
    msgs = [{"role": "system", "content": "You are a helpful assistant. " * 8}]
    for i in range(6):
        msgs.append({"role": "user" if i % 2 == 0 else "assistant",
                     "content": f"Turn {i}: " + "lorem ipsum dolor sit amet " * 5})
    body = '{"model": %s, "temperature": 0.70, "top_p": 1e0, "messages": %s%s}' % (
        json.dumps(model), json.dumps(msgs), ', "stream": true' if stream else "")
    return body


def setup_scenarios(m):
    m.file("chat.json", CHAT_JSON)
    m.file("chat.sse", CHAT_SSE)
    m.scenario("chat", "header Content-Type: application/json\nheader x-request-id: up-123\n"
               "header Connection: X-Hop\nheader X-Hop: secret-hop\nheader Keep-Alive: timeout=5\n"
               "header X-Custom: kept\nbody-file chat.json\n")
    m.scenario("chat-stream", "header Content-Type: text/event-stream\nframing chunked\n"
               "split-events\nbody-file chat.sse\n")
    m.scenario("echo", "echo\n")


def test_chat_nonstreamed(ctx):
    p, m = ctx.proxy, ctx.mock
    setup_scenarios(m)
    body = chat_body()
    st, r, data = p.post("/v1/chat/completions?mock=chat", body,
                         headers={"Content-Type": "application/json",
                                  "OpenAI-Organization": "org-client", "OpenAI-Beta": "x=1",
                                  "Idempotency-Key": "idem-1", "X-Request-Id": "my-req-1",
                                  "User-Agent": "test/1.0", "Cookie": "a=b",
                                  "X-WhyOps-Signature": "off"})
    eq(st, 200, "status")
    eq(data, CHAT_JSON.encode(), "body")
    eq(r.getheader("X-Request-Id"), "my-req-1", "X-Request-Id echoed")
    eq(r.getheader("X-Upstream-Request-Id"), "up-123", "upstream request id kept")
    eq(r.getheader("X-Custom"), "kept", "end-to-end header")
    eq(r.getheader("X-Hop"), None, "header named by Connection removed")
    eq(r.getheader("Keep-Alive"), None, "Keep-Alive removed")
    rec = m.last()
    eq(rec["method"], "POST", "upstream method")
    eq(rec["path"], "/v1/chat/completions", "upstream path")
    eq(rec["query"], "mock=chat", "query string")
    eq(rec["body"], body, "body forwarded byte for byte")
    eq(header(rec, "Authorization"), ["Bearer " + OPENAI_KEY], "provider credential")
    eq(header(rec, "x-api-key"), [], "no x-api-key upstream")
    eq(header(rec, "OpenAI-Organization"), ["org-from-config"], "provider header wins")
    eq(header(rec, "OpenAI-Beta"), ["x=1"], "OpenAI-Beta passed")
    eq(header(rec, "Idempotency-Key"), ["idem-1"], "Idempotency-Key passed")
    eq(header(rec, "Content-Type"), ["application/json"], "Content-Type passed")
    for h in ("User-Agent", "Cookie", "X-Request-Id", "Expect"):
        eq(header(rec, h), [], f"{h} not passed upstream")
    check(p.key not in json.dumps(rec), "client key reached the upstream")


def test_chat_streamed(ctx):
    p, m = ctx.proxy, ctx.mock
    setup_scenarios(m)
    st, r, data = p.post("/v1/chat/completions?mock=chat-stream", chat_body(stream=True),
                         headers={"Content-Type": "application/json"})
    eq(st, 200, "status")
    eq(data, CHAT_SSE.encode(), "stream forwarded intact")
    eq(r.getheader("Content-Type"), "text/event-stream", "content type")
    eq(r.getheader("Cache-Control"), "no-cache", "Cache-Control")
    eq(r.getheader("X-Accel-Buffering"), "no", "X-Accel-Buffering")
    check(r.getheader("X-Request-Id", "").startswith("req_"), "generated request id")


def test_paths_without_v1(ctx):
    p, m = ctx.proxy, ctx.mock
    setup_scenarios(m)
    st, _, data = p.post("/chat/completions?mock=chat", chat_body())
    eq(st, 200, "status without /v1")
    eq(m.last()["path"], "/v1/chat/completions", "upstream path adds base_url's /v1")


def test_slug_rewrite_keeps_other_bytes(ctx):
    p, m = ctx.proxy, ctx.mock
    setup_scenarios(m)
    body = chat_body(model="openai/gpt-4o")
    st, _, _ = p.post("/v1/chat/completions?mock=chat", body)
    eq(st, 200, "status")
    eq(m.last()["body"], body.replace('"openai/gpt-4o"', '"gpt-4o"', 1), "only the model changed")



def test_slug_rewrite_of_an_unpaired_surrogate(ctx):
    """An unpaired surrogate escape decodes to bytes that are not UTF-8;
    json_string() refused them and the rewrite aborted the proxy.  They go
    upstream as '?', the rest of the body unchanged."""
    p, m = ctx.proxy, ctx.mock
    setup_scenarios(m)
    body = '{"model":"openai/gpt-\\ud800x","messages":[]}'
    st, _, data = p.post("/v1/chat/completions?mock=chat", body)
    eq(st, 200, f"status: {data[:200]!r}")
    eq(m.last()["body"], '{"model":"gpt-???x","messages":[]}', "model rewritten")
    eq(p.request("GET", "/healthz", key=False)[0], 200, "alive")


def test_escaped_member_names_are_read(ctx):
    """A key spelled with an escape is the same key to the upstream's
    parser, so it is to the proxy: "\u006dodel" routes, and the slug is
    still cut from its value."""
    p, m = ctx.proxy, ctx.mock
    setup_scenarios(m)
    body = '{"\\u006dodel":"llama3","messages":[]}'
    st, _, data = p.post("/v1/chat/completions?mock=chat", body)
    eq(st, 200, f"status: {data[:200]!r}")
    eq(m.last()["path"], "/local/v1/chat/completions", "routed by the escaped model key")
    body = '{"\\u006dodel":"openai/gpt-4o","messages":[]}'
    st, _, _ = p.post("/v1/chat/completions?mock=chat", body)
    eq(st, 200, "status")
    eq(m.last()["body"], body.replace('"openai/gpt-4o"', '"gpt-4o"'), "slug cut")


def test_openrouter_style_model_unchanged(ctx):
    p, m = ctx.proxy, ctx.mock
    setup_scenarios(m)
    body = '{"model":"meta-llama/llama-3-70b","messages":[]}'
    st, _, _ = p.post("/v1/chat/completions?mock=chat", body)
    eq(st, 200, "status")
    rec = m.last()
    eq(rec["body"], body, "model kept whole")
    eq(rec["path"], "/v1/chat/completions", "default provider (first of environment)")


def test_pattern_routing(ctx):
    p, m = ctx.proxy, ctx.mock
    setup_scenarios(m)
    st, _, _ = p.post("/v1/chat/completions?mock=chat", '{"model":"llama3.1:8b"}')
    eq(st, 200, "status")
    rec = m.last()
    eq(rec["path"], "/local/v1/chat/completions", "routed by models pattern")
    eq(header(rec, "Authorization"), [], "provider without key sends no credential")


def test_responses(ctx):
    p, m = ctx.proxy, ctx.mock
    m.scenario("resp", 'header Content-Type: application/json\nbody {"id":"resp_1","object":"response","status":"completed"}\n')
    m.scenario("resp-stream", "header Content-Type: text/event-stream\nsplit-events\nframing chunked\n"
               'body event: response.created\\ndata: {"type":"response.created"}\\n\\nevent: response.completed\\ndata: {"type":"response.completed"}\\n\\n\n')
    st, _, data = p.post("/v1/responses?mock=resp", '{"model":"gpt-4o","input":"hi"}')
    eq(st, 200, "status")
    eq(json.loads(data)["id"], "resp_1", "body")
    eq(m.last()["path"], "/v1/responses", "upstream path")
    st, _, data = p.post("/v1/responses?mock=resp-stream", '{"model":"gpt-4o","input":"hi","stream":true}')
    eq(st, 200, "status")
    eq(len(sse_events(data)), 2, "two events")


def test_embeddings(ctx):
    p, m = ctx.proxy, ctx.mock
    m.scenario("emb", 'header Content-Type: application/json\nbody {"object":"list","data":[{"embedding":[0.1,0.2]}]}\n')
    body = '{"model":"text-embedding-3-small","input":["a","b"]}'
    st, _, data = p.post("/v1/embeddings?mock=emb", body)
    eq(st, 200, "status")
    rec = m.last()
    eq(rec["path"], "/v1/embeddings", "upstream path")
    eq(rec["body"], body, "body")


def test_models(ctx):
    p, m = ctx.proxy, ctx.mock
    m.scenario("models", 'header Content-Type: application/json\nbody {"object":"list","data":[]}\n')
    st, _, data = p.request("GET", "/v1/models?mock=models")
    eq(st, 200, "status")
    rec = m.last()
    eq(rec["method"], "GET", "method")
    eq(rec["path"], "/v1/models", "default openai-type provider")
    eq(header(rec, "Authorization"), ["Bearer " + OPENAI_KEY], "credential")


def test_anthropic_messages(ctx):
    p, m = ctx.proxy, ctx.mock
    m.scenario("msg", 'header Content-Type: application/json\nheader request-id: req_ant\n'
               'body {"id":"msg_1","type":"message","content":[{"type":"text","text":"Hi"}]}\n')
    body = '{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'
    st, r, data = p.post("/v1/messages?mock=msg", body,
                         key=False, headers={"x-api-key": p.key, "anthropic-beta": "tools-2024",
                                             "Content-Type": "application/json"})
    eq(st, 200, "status")
    eq(json.loads(data)["id"], "msg_1", "body")
    eq(r.getheader("request-id"), "req_ant", "upstream header kept")
    rec = m.last()
    eq(rec["path"], "/v1/messages", "path")
    eq(rec["body"], body, "body")
    eq(header(rec, "x-api-key"), [ANTHROPIC_KEY], "anthropic credential")
    eq(header(rec, "Authorization"), [], "no Authorization upstream")
    eq(header(rec, "anthropic-version"), ["2023-06-01"], "default anthropic-version")
    eq(header(rec, "anthropic-beta"), ["tools-2024"], "anthropic-beta passed")
    # An explicit version is kept.
    p.post("/v1/messages?mock=msg", body, key=False,
           headers={"x-api-key": p.key, "anthropic-version": "2024-01-01"})
    eq(header(m.last(), "anthropic-version"), ["2024-01-01"], "client anthropic-version")


def test_anthropic_streamed(ctx):
    p, m = ctx.proxy, ctx.mock
    sse = ('event: message_start\ndata: {"type":"message_start"}\n\n'
           'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"Hi"}}\n\n'
           'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    m.file("msg.sse", sse)
    m.scenario("msg-stream", "header Content-Type: text/event-stream; charset=utf-8\nsplit 7\nframing chunked\nbody-file msg.sse\n")
    st, r, data = p.post("/v1/messages?mock=msg-stream",
                         '{"model":"anthropic/claude-x","stream":true,"max_tokens":5}',
                         key=False, headers={"x-api-key": p.key})
    eq(st, 200, "status")
    eq(data, sse.encode(), "stream intact across odd splits")
    eq(json.loads(m.last()["body"])["model"], "claude-x", "slug removed")


def test_upstream_errors_pass_through(ctx):
    p, m = ctx.proxy, ctx.mock
    err = '{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}'
    m.scenario("ratelimit", f"status 429\nheader Content-Type: application/json\nheader Retry-After: 3\nbody {err}\n")
    st, r, data = p.post("/v1/chat/completions?mock=ratelimit", chat_body())
    eq(st, 429, "status")
    eq(data, err.encode(), "body unchanged")
    eq(r.getheader("Retry-After"), "3", "header kept")
    m.scenario("overloaded", 'status 529\nheader Content-Type: application/json\n'
               'body {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n')
    st, _, data = p.post("/v1/messages?mock=overloaded", '{"model":"claude-x"}', key=False,
                         headers={"x-api-key": p.key})
    eq(st, 529, "status")
    eq(json.loads(data)["error"]["type"], "overloaded_error", "body")


def test_large_body_forwarded(ctx):
    p, m = ctx.proxy, ctx.mock
    setup_scenarios(m)
    big = '{"model":"gpt-4o","messages":[{"role":"user","content":"%s"}]}' % ("x" * 5_000_000)
    st, _, _ = p.post("/v1/chat/completions?mock=chat", big)
    eq(st, 200, "status")
    eq(len(m.last()["body"]), len(big), "5 MB body intact")
    eq(header(m.last(), "Expect"), [], "no Expect: 100-continue")


def test_healthz(ctx):
    st, _, data = ctx.proxy.request("GET", "/healthz", key=False)
    eq(st, 200, "status")
    eq(json.loads(data), {"status": "ok"}, "body")


def test_keepalive_reuses_upstream_connection(ctx):
    p, m = ctx.proxy, ctx.mock
    setup_scenarios(m)
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", m.port)
    c.request("GET", "/__mock/stats")
    before = json.loads(c.getresponse().read())
    for _ in range(20):
        eq(p.post("/v1/chat/completions?mock=chat", chat_body())[0], 200, "status")
    c.request("GET", "/__mock/stats")
    after = json.loads(c.getresponse().read())
    c.close()
    check(after["connections_total"] - before["connections_total"] <= 2,
          f"upstream connections reused: {before} -> {after}")
