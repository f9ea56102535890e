"""Calls through the proxy become events in the file sink: every endpoint,
streamed and not, with usage, content and tool calls; include_usage forcing
is invisible to the client and visible in the record."""
import json
import os
import re

from harness import check, eq, sse_events

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")
TSAN = True
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def fixture(name):
    with open(os.path.join(FIX, name), "rb") as f:
        return f.read()


def serve(m, name, body_file, sse):
    m.file(name + ".body", fixture(body_file))
    ctype = "text/event-stream" if sse else "application/json"
    extra = "framing chunked\nsplit-events\n" if sse else ""
    m.scenario(name, f"header Content-Type: {ctype}\n{extra}body-file {name}.body\n")


def call(p, path, body, rid, **kw):
    # These tests compare bytes with the upstream's: no invisible signature
    # (test_trace.py covers marking).
    headers = kw.pop("headers", {})
    headers["X-Request-Id"] = rid
    headers.setdefault("X-WhyOps-Signature", "off")
    st, r, data = p.post(path, body, headers=headers, **kw)
    return st, r, data


def check_envelope(env):
    eq(env["source"], "proxy", "source")
    eq(env["retryCount"], 0, "retryCount")
    check(ISO.match(env["enqueuedAt"]), f"enqueuedAt {env['enqueuedAt']}")
    pl = env["payload"]
    for k in ("schemaVersion", "eventId", "eventType", "traceId", "spanId", "agentName",
              "timestamp", "content", "metadata", "keyName", "projectId", "environmentId"):
        check(k in pl, f"payload has {k}: {sorted(pl)}")


def test_chat_streamed_n2_with_forced_usage(ctx):
    p, m = ctx.proxy, ctx.mock
    serve(m, "n2", "chat-n2.sse", True)
    body = '{"model":"gpt-4o-mini","stream":true,"n":2,"messages":[{"role":"user","content":"Say hi twice"}]}'
    st, r, data = call(p, "/v1/chat/completions?mock=n2", body, "ev-chat-n2",
                       headers={"X-Agent-Name": "planner", "X-External-User-Id": "u-42"})
    eq(st, 200, "status")
    # The client did not ask for usage: the usage-only chunk is not forwarded,
    # every other event is, byte for byte.
    upstream_events = sse_events(fixture("chat-n2.sse"))
    got = sse_events(data)
    eq(len(got), len(upstream_events) - 1, "one event removed")
    check(all(b'"choices":[]' not in e for e in got), "usage chunk removed")
    eq([e for e in upstream_events if b'"choices":[]' not in e], got, "others intact")
    rec = json.loads(m.last()["body"])
    eq(rec["stream_options"], {"include_usage": True}, "proxy asked for usage upstream")
    evs = p.events_for("ev-chat-n2")
    for e in p.events():
        if e["payload"]["metadata"].get("requestId") == "ev-chat-n2":
            check_envelope(e)
    types = [e["eventType"] for e in evs]
    eq(types[0], "user_message", "first event")
    eq(types[-1], "llm_response", "last event")
    resp = evs[-1]
    md = resp["metadata"]
    eq(md["usage"]["promptTokens"], 20, "prompt tokens")
    eq(md["usage"]["completionTokens"], 31, "completion tokens")
    eq(md["usage"]["cacheReadTokens"], 8, "cached tokens")
    eq(md["usage"]["reasoningTokens"], 5, "reasoning tokens")
    eq(md["usageForced"], True, "usage forcing recorded")
    eq(md["providerSlug"], "openai", "provider slug")
    eq(md["provider"], "openai", "provider type")
    eq(md["requestId"], "ev-chat-n2", "request id")
    check(md["model"].startswith("gpt-4o-mini"), "model")
    eq(resp["agentName"], "planner", "agent from header")
    eq(resp["keyName"], "ci-agent", "key name")
    eq(resp["projectId"], "acme", "project")
    eq(resp["environmentId"], "production", "environment")
    check(len(resp["content"].get("allChoices", [])) == 2, "two choices recorded")
    check(len({e["eventId"] for e in evs}) == len(evs), "unique event ids")
    check(len({e["traceId"] for e in evs}) == 1, "one trace id")
    check(p.key not in json.dumps(evs) and p.key_hash not in json.dumps(evs), "no key in events")


def test_chat_client_asked_for_usage_sees_it(ctx):
    p, m = ctx.proxy, ctx.mock
    serve(m, "n2", "chat-n2.sse", True)
    body = ('{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},'
            '"messages":[{"role":"user","content":"hi"}]}')
    st, _, data = call(p, "/v1/chat/completions?mock=n2", body, "ev-chat-usage")
    eq(st, 200, "status")
    eq(data, fixture("chat-n2.sse"), "whole stream, usage chunk included")
    eq(m.last()["body"], body, "body forwarded unchanged")
    evs = p.events_for("ev-chat-usage")
    eq(evs[-1]["metadata"]["usageForced"], False, "not forced")
    eq(evs[-1]["metadata"]["usage"]["totalTokens"], 51, "usage")


def test_force_stream_usage_off(ctx):
    p = ctx.new_proxy(extra_upstream="force_stream_usage = no")
    m = ctx.mock
    serve(m, "n2", "chat-n2.sse", True)
    body = '{"model":"gpt-4o-mini","stream":true,"messages":[]}'
    st, _, data = call(p, "/v1/chat/completions?mock=n2", body, "ev-noforce")
    eq(m.last()["body"], body, "body untouched")
    eq(data, fixture("chat-n2.sse"), "stream untouched")


def test_chat_nonstreamed_tool_call(ctx):
    p, m = ctx.proxy, ctx.mock
    serve(m, "n2json", "chat-n2.json", False)
    body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}'
    st, _, data = call(p, "/v1/chat/completions?mock=n2json", body, "ev-chat-json")
    eq(st, 200, "status")
    eq(data, fixture("chat-n2.json"), "body")
    evs = p.events_for("ev-chat-json")
    eq(evs[0]["eventType"], "user_message", "request event")
    check("hello there" in json.dumps(evs[0]["content"]), "user text captured")
    eq(evs[-1]["metadata"]["usage"]["totalTokens"], 51, "usage from the JSON body")
    eq(evs[-1]["metadata"]["stream"], False, "not a stream")
    md = evs[-1]["metadata"]
    check(0 < md["ttftMs"] <= md["latencyMs"] + 1, f"a buffered answer's ttft is its body: {md}")


def test_unusual_request_body_recorded(ctx):
    """A body with what some JSON parsers refuse (a NUL escape, an unpaired
    surrogate escape, an integer beyond 64 bits) is forwarded as sent and
    recorded in the request event, not dropped from it."""
    p, m = ctx.proxy, ctx.mock
    serve(m, "odd-body", "chat-n2.json", False)
    body = ('{"model":"gpt-4o-mini","max_tokens":123456789012345678901234,"messages":'
            '[{"role":"user","content":"before\\u0000after \\ud800 end"}]}')
    st, _, _ = call(p, "/v1/chat/completions?mock=odd-body", body, "ev-odd-body")
    eq(st, 200, "status")
    eq(m.last()["body"], body, "forwarded as sent")
    ev = p.events_for("ev-odd-body")[0]
    eq(ev["eventType"], "user_message", "request event")
    c = ev["content"]
    eq(c["content"], "before\x00after ??? end", "last user text, decoded")
    eq(c["messages"][0]["content"], "before\x00after \ud800 end", "conversation as sent")
    eq(c["params"]["maxTokens"], 123456789012345678901234, "integer kept whole")


def test_responses_streamed(ctx):
    p, m = ctx.proxy, ctx.mock
    serve(m, "rmix", "responses-mixed.sse", True)
    st, _, data = call(p, "/v1/responses?mock=rmix",
                       '{"model":"gpt-4o","stream":true,"input":"go"}', "ev-resp")
    eq(st, 200, "status")
    eq(data, fixture("responses-mixed.sse"), "stream intact")
    evs = p.events_for("ev-resp")
    types = [e["eventType"] for e in evs]
    check("llm_thinking" in types, f"reasoning recorded: {types}")
    tcs = evs[-1]["content"]["toolCalls"]
    check(tcs and all({"id", "type", "function"} <= set(t) for t in tcs), f"tool calls: {tcs}")


def test_anthropic_streamed_and_not(ctx):
    p, m = ctx.proxy, ctx.mock
    serve(m, "amix", "anthropic-mixed.sse", True)
    serve(m, "amixj", "anthropic-mixed.json", False)
    for mock, rid, stream in (("amix", "ev-ant-s", True), ("amixj", "ev-ant-j", False)):
        body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": stream,
                           "system": "be brief", "messages": [{"role": "user", "content": "q"}]})
        st, _, data = call(p, f"/v1/messages?mock={mock}", body, rid, key=False,
                           headers={"x-api-key": p.key})
        eq(st, 200, "status")
    s_evs, j_evs = p.events_for("ev-ant-s"), p.events_for("ev-ant-j")
    eq([e["eventType"] for e in s_evs], [e["eventType"] for e in j_evs], "same event types")
    for evs in (s_evs, j_evs):
        u = evs[-1]["metadata"]["usage"]
        check(u.get("cacheReadTokens", 0) > 0 or u.get("cacheCreationTokens", 0) > 0,
              f"cache usage: {u}")
        for tc in evs[-1]["content"]["toolCalls"]:
            json.loads(tc["function"]["arguments"])  # a JSON string
    eq(s_evs[-1]["content"]["content"], j_evs[-1]["content"]["content"], "same text")
    eq(s_evs[0]["content"].get("systemPrompt"), "be brief", "system prompt")


def test_embeddings_and_models(ctx):
    p, m = ctx.proxy, ctx.mock
    m.scenario("emb", 'header Content-Type: application/json\nbody {"object":"list","model":"text-embedding-3-small",'
               '"data":[{"object":"embedding","index":0,"embedding":[0.1,0.2,0.3]},{"object":"embedding","index":1,"embedding":[0.4,0.5,0.6]}],'
               '"usage":{"prompt_tokens":4,"total_tokens":4}}\n')
    st, _, _ = call(p, "/v1/embeddings?mock=emb", '{"model":"text-embedding-3-small","input":["a","b"]}', "ev-emb")
    eq(st, 200, "status")
    evs = p.events_for("ev-emb")
    eq([e["eventType"] for e in evs], ["embedding_request", "embedding_response"], "types")
    check("0.1" not in json.dumps(evs[-1]["content"]), "vectors are not recorded")
    check("ttftMs" not in evs[-1]["metadata"], "an embedding has no tokens to time")


def test_upstream_error_event(ctx):
    p, m = ctx.proxy, ctx.mock
    m.scenario("e429", 'status 429\nheader Content-Type: application/json\n'
               'body {"error":{"message":"Rate limit","type":"requests","code":"rate_limit_exceeded"}}\n')
    st, _, _ = call(p, "/v1/chat/completions?mock=e429", '{"model":"gpt-4o","messages":[]}', "ev-429")
    eq(st, 429, "status")
    evs = p.events_for("ev-429")
    eq(evs[-1]["eventType"], "error", "error event")
    eq(evs[-1]["metadata"]["upstreamStatus"], 429, "upstream status")
    check("ttftMs" not in evs[-1]["metadata"], "an error answer has no first token")


def test_capture_metadata_only(ctx):
    p = ctx.new_proxy(extra_events="capture = metadata")
    m = ctx.mock
    serve(m, "n2", "chat-n2.sse", True)
    body = '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"SECRET-MARKER-123"}]}'
    call(p, "/v1/chat/completions?mock=n2", body, "ev-meta")
    evs = p.events_for("ev-meta")
    dump = json.dumps(evs)
    check("SECRET-MARKER-123" not in dump, "no request content")
    check("Paris" not in dump and "capital" not in dump, "no response content")
    eq(evs[-1]["metadata"]["usage"]["totalTokens"], 51, "usage still recorded")
