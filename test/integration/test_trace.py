"""Trace identity: multi-turn agent loops with no trace headers land in one
trace; the upstream never sees a mark; answers carry the signature once."""
import json
import re

from harness import check, eq, error_shape

TSAN = True

ZW = re.compile("[\u200b-\u200e]")
ZW_ESC = re.compile(r"\\u200[b-eB-E]")


def decode_sig(text):
    """The reference decoder: newest valid signature in text, or None."""
    found = None
    for m in re.finditer("\u200b([\u200c\u200d]+)\u200e", text):
        bits = m.group(1)
        if len(bits) % 8:
            continue
        bs = bytes(int("".join("1" if c == "\u200c" else "0" for c in bits[i:i + 8]), 2)
                   for i in range(0, len(bits), 8))
        try:
            found = bs.decode("ascii")
        except UnicodeDecodeError:
            pass
    return found


def clean_upstream(m):
    """No request the mock received carries a mark."""
    for rec in m.records():
        body = rec["body"]
        check(not ZW.search(body) and not ZW_ESC.search(body), f"zero-width chars upstream: {rec['seq']}")
        check("_whyops_trace_id" not in body, f"_whyops_trace_id upstream: {rec['seq']}")


def post(p, path, body, **kw):
    st, r, data = p.post(path, json.dumps(body) if not isinstance(body, str) else body, **kw)
    eq(st, 200, f"status for {path}")
    return r, data


def trace_of(p, rid):
    evs = p.events_for(rid)
    ids = {e["traceId"] for e in evs}
    eq(len(ids), 1, "one trace per call")
    return ids.pop(), evs[-1]["metadata"]["traceSource"]


# --- chat ------------------------------------------------------------------

CHAT_TOOL = json.dumps({"id": "c1", "object": "chat.completion", "model": "gpt-4o", "choices": [{
    "index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_chat_1", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    "finish_reason": "tool_calls"}]})
CHAT_TEXT = json.dumps({"id": "c2", "object": "chat.completion", "model": "gpt-4o", "choices": [{
    "index": 0, "message": {"role": "assistant", "content": "It is sunny in Paris."},
    "finish_reason": "stop"}]})


def chat_sse(parts, tool=None):
    ev = []
    base = '{"id":"cs","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[%s]}'
    ev.append(base % '{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}')
    for t in parts:
        ev.append(base % ('{"index":0,"delta":{"content":%s},"finish_reason":null}' % json.dumps(t)))
    if tool:
        ev.append(base % ('{"index":0,"delta":{"tool_calls":[{"index":0,"id":"%s","type":"function",'
                          '"function":{"name":"lookup","arguments":"{}"}}]},"finish_reason":null}' % tool))
    ev.append(base % ('{"index":0,"delta":{},"finish_reason":"%s"}' % ("tool_calls" if tool else "stop")))
    return "".join("data: %s\n\n" % e for e in ev) + "data: [DONE]\n\n"


def sse_text(data):
    """Chat stream: the assembled content of choice 0."""
    out = ""
    for line in data.decode().split("\n"):
        if line.startswith("data: {"):
            for c in json.loads(line[6:]).get("choices", []):
                out += c.get("delta", {}).get("content") or ""
    return out


def test_chat_loop_nonstreamed_tool_then_text(ctx):
    p, m = ctx.proxy, ctx.mock
    m.clear()
    m.file("ct.json", CHAT_TOOL)
    m.file("cx.json", CHAT_TEXT)
    m.scenario("ct", "header Content-Type: application/json\nbody-file ct.json\n")
    m.scenario("cx", "header Content-Type: application/json\nbody-file cx.json\n")
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    r, data = post(p, "/v1/chat/completions?mock=ct", {"model": "gpt-4o", "messages": msgs},
                   headers={"X-Request-Id": "tr-chat-1"})
    t1 = r.getheader("X-Trace-ID")
    eq(r.getheader("X-Thread-ID"), t1, "X-Thread-ID")
    msg = json.loads(data)["choices"][0]["message"]
    args = json.loads(msg["tool_calls"][0]["function"]["arguments"])
    eq(args, {"city": "Paris", "_whyops_trace_id": t1}, "tool arguments tagged, still JSON")
    msgs += [msg, {"role": "tool", "tool_call_id": "call_chat_1", "content": "sunny"}]
    r, data = post(p, "/v1/chat/completions?mock=cx", {"model": "gpt-4o", "messages": msgs},
                   headers={"X-Request-Id": "tr-chat-2"})
    eq(r.getheader("X-Trace-ID"), t1, "second call continues the trace")
    text = json.loads(data)["choices"][0]["message"]["content"]
    eq(ZW.sub("", text), "It is sunny in Paris.", "visible text unchanged")
    eq(decode_sig(text), t1, "signature carries the trace id")
    eq(len(re.findall("\u200b", text)), 1, "signature exactly once")
    msgs += [{"role": "assistant", "content": text}, {"role": "user", "content": "Thanks!"}]
    r, _ = post(p, "/v1/chat/completions?mock=cx", {"model": "gpt-4o", "messages": msgs},
                headers={"X-Request-Id": "tr-chat-3"})
    eq(r.getheader("X-Trace-ID"), t1, "third call continues the trace")
    eq(trace_of(p, "tr-chat-1"), (t1, "generated"), "first call")
    eq(trace_of(p, "tr-chat-2"), (t1, "tool_args"), "from tagged tool arguments")
    eq(trace_of(p, "tr-chat-3"), (t1, "signature"), "from the signature")
    clean_upstream(m)
    # Recorded content is clean too.
    check(not ZW.search(json.dumps(p.events_for("tr-chat-3"))), "events hold clean text")


def test_chat_loop_streamed_tool_call_only_uses_id_map(ctx):
    p, m = ctx.proxy, ctx.mock
    m.clear()
    m.file("cst.sse", chat_sse([], tool="call_stream_9"))
    m.file("csx.sse", chat_sse(["Done", " now."]))
    m.scenario("cst", "header Content-Type: text/event-stream\nframing chunked\nsplit-events\nbody-file cst.sse\n")
    m.scenario("csx", "header Content-Type: text/event-stream\nframing chunked\nsplit-events\nbody-file csx.sse\n")
    msgs = [{"role": "user", "content": "look it up"}]
    r, data = post(p, "/v1/chat/completions?mock=cst", {"model": "gpt-4o", "stream": True, "messages": msgs})
    t1 = r.getheader("X-Trace-ID")
    check("\u200b" not in data.decode(), "tool-call-only stream is not marked")
    msgs += [{"role": "assistant", "content": None, "tool_calls": [{"id": "call_stream_9", "type": "function",
             "function": {"name": "lookup", "arguments": "{}"}}]},
             {"role": "tool", "tool_call_id": "call_stream_9", "content": "42"}]
    r, data = post(p, "/v1/chat/completions?mock=csx",
                   {"model": "gpt-4o", "stream": True, "messages": msgs},
                   headers={"X-Request-Id": "tr-chat-s2"})
    eq(r.getheader("X-Trace-ID"), t1, "continued through the id map")
    eq(trace_of(p, "tr-chat-s2")[1], "call_id", "source")
    text = sse_text(data)
    eq(ZW.sub("", text), "Done now.", "text")
    eq(decode_sig(text), t1, "streamed text carries the signature")
    eq(text.count("\u200b"), 1, "exactly once")
    msgs += [{"role": "assistant", "content": text}, {"role": "user", "content": "ok"}]
    r, _ = post(p, "/v1/chat/completions?mock=csx", {"model": "gpt-4o", "stream": True, "messages": msgs})
    eq(r.getheader("X-Trace-ID"), t1, "continued through the signature")
    clean_upstream(m)


def test_chat_escaped_signature_in_history(ctx):
    p, m = ctx.proxy, ctx.mock
    m.clear()
    m.scenario("cx", "header Content-Type: application/json\nbody-file cx.json\n")
    m.file("cx.json", CHAT_TEXT)
    r, data = post(p, "/v1/chat/completions?mock=cx", {"model": "gpt-4o", "messages": [
        {"role": "user", "content": "hi"}]})
    t1 = r.getheader("X-Trace-ID")
    text = json.loads(data)["choices"][0]["message"]["content"]
    # json.dumps escapes non-ASCII: the history carries \\u200b forms.
    body = json.dumps({"model": "gpt-4o", "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": text},
        {"role": "user", "content": "more"}]}, ensure_ascii=True)
    r, _ = post(p, "/v1/chat/completions?mock=cx", body)
    eq(r.getheader("X-Trace-ID"), t1, "escaped signature found")
    clean_upstream(m)


def test_json_mode_untouched(ctx):
    p, m = ctx.proxy, ctx.mock
    answer = json.dumps({"id": "j", "object": "chat.completion", "choices": [{"index": 0, "message": {
        "role": "assistant", "content": "{\"a\": 1}"}, "finish_reason": "stop"}]})
    m.file("cj.json", answer)
    m.scenario("cj", "header Content-Type: application/json\nbody-file cj.json\n")
    for fmt in ({"type": "json_object"}, {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}):
        _, data = post(p, "/v1/chat/completions?mock=cj", {"model": "gpt-4o", "response_format": fmt,
                                                           "messages": [{"role": "user", "content": "json"}]})
        eq(data, answer.encode(), "JSON-mode answer untouched")
        json.loads(json.loads(data)["choices"][0]["message"]["content"])
    _, data = post(p, "/v1/chat/completions?mock=cj", {"model": "gpt-4o", "messages": []},
                   headers={"X-WhyOps-Signature": "off"})
    eq(data, answer.encode(), "opt-out header")


def test_trace_headers(ctx):
    p, m = ctx.proxy, ctx.mock
    m.file("cx.json", CHAT_TEXT)
    m.scenario("cx", "header Content-Type: application/json\nbody-file cx.json\n")
    r, _ = post(p, "/v1/chat/completions?mock=cx", {"model": "gpt-4o", "messages": []},
                headers={"X-Trace-ID": "my.trace:1"})
    eq(r.getheader("X-Trace-ID"), "my.trace:1", "X-Trace-ID wins")
    r, _ = post(p, "/v1/chat/completions?mock=cx", {"model": "gpt-4o", "messages": []},
                headers={"X-Thread-ID": "thread_V1StGXR8Z5jdHi6B"})
    eq(r.getheader("X-Trace-ID"), "thread_V1StGXR8Z5jdHi6B", "X-Thread-ID")
    r, _ = post(p, "/v1/chat/completions?mock=cx", {"model": "gpt-4o", "messages": []},
                headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    eq(r.getheader("X-Trace-ID"), "4bf92f3577b34da6a3ce929d0e0e4736", "traceparent")
    for h, v in (("X-Trace-ID", "bad id!"), ("X-Thread-ID", "x" * 129), ("traceparent", "00-zz-00-01")):
        st, r, data = p.post("/v1/chat/completions", '{"model":"gpt-4o"}', headers={h: v})
        eq(st, 400, f"invalid {h}")
        error_shape(data, "openai")
        check(r.getheader("X-Trace-ID"), "trace header on errors too")
    st, r, _ = p.post("/v1/chat/completions", '{"model":"gpt-4o"}', key=False)
    eq(st, 401, "status")
    check(r.getheader("X-Trace-ID"), "X-Trace-ID on a 401")


# --- Responses ---------------------------------------------------------------

def responses_sse(text, rid="resp_1"):
    evs = []
    def add(t, d):
        d["type"] = t
        evs.append("event: %s\ndata: %s\n\n" % (t, json.dumps(d)))
    resp = {"id": rid, "object": "response", "status": "in_progress", "output": []}
    add("response.created", {"response": resp})
    add("response.output_item.added", {"output_index": 0, "item": {"id": "msg_1", "type": "message", "role": "assistant", "content": []}})
    add("response.content_part.added", {"item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": ""}})
    for piece in (text[:4], text[4:]):
        add("response.output_text.delta", {"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": piece})
    add("response.output_text.done", {"item_id": "msg_1", "output_index": 0, "content_index": 0, "text": text})
    add("response.content_part.done", {"item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": text}})
    item = {"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}
    add("response.output_item.done", {"output_index": 0, "item": item})
    add("response.completed", {"response": dict(resp, status="completed", output=[item])})
    return "".join(evs)


def test_responses_streamed_marks_consistently(ctx):
    p, m = ctx.proxy, ctx.mock
    m.clear()
    m.file("rs.sse", responses_sse("Hello there", rid="resp_abc"))
    m.scenario("rs", "header Content-Type: text/event-stream\nframing chunked\nsplit-events\nbody-file rs.sse\n")
    r, data = post(p, "/v1/responses?mock=rs", {"model": "gpt-4o", "stream": True, "input": "hi"})
    t1 = r.getheader("X-Trace-ID")
    deltas, done, completed = "", None, None
    for block in data.decode().split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                d = json.loads(line[6:])
                if d["type"] == "response.output_text.delta":
                    deltas += d["delta"]
                elif d["type"] == "response.output_text.done":
                    done = d["text"]
                elif d["type"] == "response.completed":
                    completed = d["response"]["output"][0]["content"][0]["text"]
    eq(done, deltas, ".done agrees with the deltas")
    eq(completed, deltas, "response.completed agrees")
    eq(decode_sig(deltas), t1, "signature")
    eq(deltas.count("\u200b"), 1, "once")
    # Continue by previous_response_id alone.
    r, _ = post(p, "/v1/responses?mock=rs", {"model": "gpt-4o", "stream": True,
                                             "previous_response_id": "resp_abc", "input": "more"})
    eq(r.getheader("X-Trace-ID"), t1, "previous_response_id continues the trace")
    # And by the signature in the input history.
    r, _ = post(p, "/v1/responses?mock=rs", {"model": "gpt-4o", "input": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "output_text", "text": deltas}]},
        {"role": "user", "content": "again"}]})
    eq(r.getheader("X-Trace-ID"), t1, "signature in Responses input")
    clean_upstream(m)


def test_responses_nonstreamed_function_call_tagged(ctx):
    p, m = ctx.proxy, ctx.mock
    m.clear()
    body = json.dumps({"id": "resp_fc", "object": "response", "status": "completed", "output": [
        {"id": "fc_1", "type": "function_call", "call_id": "call_r1", "name": "f", "arguments": "{\"x\":1}"}]})
    m.file("rf.json", body)
    m.scenario("rf", "header Content-Type: application/json\nbody-file rf.json\n")
    r, data = post(p, "/v1/responses?mock=rf", {"model": "gpt-4o", "input": "call f"})
    t1 = r.getheader("X-Trace-ID")
    out = json.loads(data)["output"][0]
    eq(json.loads(out["arguments"]), {"x": 1, "_whyops_trace_id": t1}, "arguments tagged")
    r, _ = post(p, "/v1/responses?mock=rf", {"model": "gpt-4o", "input": [
        out, {"type": "function_call_output", "call_id": "call_r1", "output": "ok"}]})
    eq(r.getheader("X-Trace-ID"), t1, "continued")
    clean_upstream(m)


# --- Anthropic ---------------------------------------------------------------

def anthropic_sse(blocks):
    evs = []
    def add(t, d):
        d["type"] = t
        evs.append("event: %s\ndata: %s\n\n" % (t, json.dumps(d)))
    add("message_start", {"message": {"id": "msg_a", "type": "message", "role": "assistant", "content": [],
                                      "model": "claude-x", "usage": {"input_tokens": 5, "output_tokens": 1}}})
    for i, b in enumerate(blocks):
        if b[0] == "text":
            add("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}})
            add("content_block_delta", {"index": i, "delta": {"type": "text_delta", "text": b[1]}})
        else:
            add("content_block_start", {"index": i, "content_block": {"type": "tool_use", "id": b[1], "name": "t", "input": {}}})
            add("content_block_delta", {"index": i, "delta": {"type": "input_json_delta", "partial_json": "{\"q\":1}"}})
        add("content_block_stop", {"index": i})
    add("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}})
    add("message_stop", {})
    return "".join(evs)


def anthropic_text(data):
    blocks = {}
    for block in data.decode().split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                d = json.loads(line[6:])
                if d["type"] == "content_block_start":
                    blocks[d["index"]] = d["content_block"].get("text", "")
                elif d["type"] == "content_block_delta" and d["delta"]["type"] == "text_delta":
                    blocks[d["index"]] += d["delta"]["text"]
    return blocks


def test_anthropic_loop(ctx):
    p, m = ctx.proxy, ctx.mock
    m.clear()
    m.file("at.sse", anthropic_sse([("tool", "toolu_1")]))
    m.file("ax.sse", anthropic_sse([("text", "All set.")]))
    m.file("aj.json", json.dumps({"id": "msg_j", "type": "message", "role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_j", "name": "t", "input": {"q": 2}}], "stop_reason": "tool_use"}))
    for n in ("at", "ax"):
        m.scenario(n, f"header Content-Type: text/event-stream\nframing chunked\nsplit-events\nbody-file {n}.sse\n")
    m.scenario("aj", "header Content-Type: application/json\nbody-file aj.json\n")
    hdr = {"x-api-key": p.key}
    # Streamed tool_use only: a trailing text block holds the signature.
    r, data = post(p, "/v1/messages?mock=at", {"model": "claude-x", "max_tokens": 10, "stream": True,
                                               "messages": [{"role": "user", "content": "go"}]}, key=False, headers=dict(hdr))
    t1 = r.getheader("X-Trace-ID")
    blocks = anthropic_text(data)
    eq(sorted(blocks), [0, 1], "a trailing block with a correct index")
    eq(decode_sig(blocks[1]), t1, "trailing block holds the signature")
    msgs = [{"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {"q": 1}},
                                              {"type": "text", "text": blocks[1]}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "r"}]}]
    r, data = post(p, "/v1/messages?mock=ax", {"model": "claude-x", "max_tokens": 10, "stream": True,
                                               "messages": msgs}, key=False, headers=dict(hdr, **{"X-Request-Id": "tr-ant-2"}))
    eq(r.getheader("X-Trace-ID"), t1, "continued")
    eq(trace_of(p, "tr-ant-2")[0], t1, "events share the trace")
    text = anthropic_text(data)[0]
    eq(ZW.sub("", text), "All set.", "text")
    eq(decode_sig(text), t1, "text block marked before its stop")
    # Non-streamed tool_use only: input tagged.
    r, data = post(p, "/v1/messages?mock=aj", {"model": "claude-x", "max_tokens": 10,
                                               "messages": msgs + [{"role": "assistant", "content": text},
                                                                   {"role": "user", "content": "next"}]},
                   key=False, headers=dict(hdr))
    eq(r.getheader("X-Trace-ID"), t1, "continued by signature")
    eq(json.loads(data)["content"][0]["input"], {"q": 2, "_whyops_trace_id": t1}, "input tagged")
    clean_upstream(m)
