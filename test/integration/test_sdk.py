"""The official Node SDKs (openai, @anthropic-ai/sdk, pinned in
test/sdk/package.json) drive multi-turn agent loops through the proxy against
scripted upstream answers: a tool call, its result, a streamed turn assembled
by the SDK's own helpers (finalChatCompletion, finalResponse, finalMessage),
then text.  The scripts (test/sdk/*.mjs) print what the SDK assembled; this
module checks it against what the mock sent, checks what reached the mock,
and checks the events the proxy wrote for every call.

Needs node (>= 20) and `npm ci` run in test/sdk; without them the tests fail
and say so."""
import json
import os
import re
import shutil
import subprocess

from harness import ANTHROPIC_KEY, OPENAI_KEY, TestFailure, check, eq, header

HERE = os.path.dirname(os.path.abspath(__file__))
SDK_DIR = os.path.normpath(os.path.join(HERE, "..", "sdk"))
NODE_TIMEOUT = 60

# --- what the scripted upstream answers ------------------------------------

OA_MODEL = "gpt-4o-mini-2024-07-18"
OA_CALL_ID = "call_sdk_weather_1"
OA_ARGS = '{"city":"Paris","unit":"celsius"}'
OA_TOOL_RESULT = '{"city":"Paris","temperature_c":18,"conditions":"sunny"}'
OA_STREAM_PIECES = ["It is ", "18\u00b0C", " and sunny", " in Paris", " right now."]
OA_STREAM_TEXT = "".join(OA_STREAM_PIECES)
OA_TEXT3 = "You're welcome! No rain is expected, so leave the umbrella at home."
OA_USAGE = {  # turn: (prompt, completion, total)
    "turn1": (82, 18, 100), "turn2": (120, 11, 131), "turn3": (150, 14, 164),
    "responses1": (60, 15, 75), "responses2": (95, 9, 104),
}
R_CALL_ID = "call_sdk_resp_1"
R_ARGS = '{"city":"Berlin"}'
R_TOOL_RESULT = '{"city":"Berlin","temperature_c":18,"conditions":"sunny"}'
R_PIECES = ["Berlin ", "is 18\u00b0C", " and sunny", " as well."]
R_TEXT = "".join(R_PIECES)

A_MODEL = "claude-sonnet-4-5-20250929"
A_TOOL_ID = "toolu_sdk_01"
A_TEXT1 = "Let me look that up."
A_TOOL_RESULT = '{"city":"Rome","temperature_c":21,"conditions":"clear"}'
A_PIECES = ["Rome is ", "21\u00b0C", " and clear", " tonight."]
A_TEXT2 = "".join(A_PIECES)
A_TEXT3 = "Enjoy your evening in Rome!"
A_USAGE = {"turn1": (350, 42), "turn2": (410, 12), "turn3": (440, 9)}


def j(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def sse(events):
    """SSE text from (event name or None, data object or string) pairs."""
    out = []
    for name, data in events:
        line = data if isinstance(data, str) else j(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {line}\n\n")
    return "".join(out)


def serve_json(m, name, obj):
    m.file(name + ".body", j(obj).encode())
    m.scenario(name, f"header Content-Type: application/json\nbody-file {name}.body\n")


def serve_sse(m, name, text):
    m.file(name + ".body", text.encode())
    m.scenario(name, "header Content-Type: text/event-stream\nheader Cache-Control: no-cache\n"
               f"framing chunked\nsplit-events\npace 5\nbody-file {name}.body\n")


def oa_usage(turn):
    p, c, t = OA_USAGE[turn]
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": t,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def r_usage(turn):
    p, c, t = OA_USAGE[turn]
    return {"input_tokens": p, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": c, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": t}


def openai_scenarios(m):
    # Turn 1: a tool call, not streamed.
    serve_json(m, "gpt-4o-mini-toolcall", {
        "id": "chatcmpl-sdk-t1", "object": "chat.completion", "created": 1750000001,
        "model": OA_MODEL, "system_fingerprint": "fp_sdk",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls",
                     "message": {"role": "assistant", "content": None, "refusal": None,
                                 "annotations": [],
                                 "tool_calls": [{"id": OA_CALL_ID, "type": "function",
                                                 "function": {"name": "get_weather",
                                                              "arguments": OA_ARGS}}]}}],
        "usage": oa_usage("turn1"), "service_tier": "default"})
    # Turn 2: streamed text; the upstream always sends the usage chunk, as it
    # does when asked (the proxy asks when the client does not).
    def chunk(delta, finish=None, choices=True, usage=None):
        c = {"id": "chatcmpl-sdk-t2", "object": "chat.completion.chunk", "created": 1750000002,
             "model": OA_MODEL, "service_tier": "default", "system_fingerprint": "fp_sdk",
             "choices": [{"index": 0, "delta": delta, "logprobs": None,
                          "finish_reason": finish}] if choices else [],
             "usage": usage}
        return (None, c)
    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": p}) for p in OA_STREAM_PIECES]
    events += [chunk({}, "stop"), chunk(None, choices=False, usage=oa_usage("turn2")),
               (None, "[DONE]")]
    serve_sse(m, "gpt-4o-mini-stream", sse(events))
    # Turn 3: text, not streamed.
    serve_json(m, "gpt-4o-mini-text", {
        "id": "chatcmpl-sdk-t3", "object": "chat.completion", "created": 1750000003,
        "model": OA_MODEL, "system_fingerprint": "fp_sdk",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": OA_TEXT3, "refusal": None,
                                 "annotations": []}}],
        "usage": oa_usage("turn3"), "service_tier": "default"})

    # Responses R1: a function call, not streamed.
    def response(rid, status, output, usage):
        return {"id": rid, "object": "response", "created_at": 1750000010, "status": status,
                "background": False, "error": None, "incomplete_details": None,
                "instructions": None, "max_output_tokens": None, "model": OA_MODEL,
                "output": output, "parallel_tool_calls": True, "previous_response_id": None,
                "reasoning": {"effort": None, "summary": None}, "service_tier": "default",
                "store": True, "temperature": 1.0,
                "text": {"format": {"type": "text"}, "verbosity": "medium"},
                "tool_choice": "auto",
                "tools": [{"type": "function", "name": "get_weather",
                           "description": "Current weather for a city",
                           "parameters": {"type": "object",
                                          "properties": {"city": {"type": "string"}},
                                          "required": ["city"], "additionalProperties": False},
                           "strict": True}],
                "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": None,
                "metadata": {}}
    serve_json(m, "gpt-4o-mini-resp-tool", response("resp_sdk_r1", "completed", [
        {"id": "fc_sdk_1", "type": "function_call", "status": "completed",
         "arguments": R_ARGS, "call_id": R_CALL_ID, "name": "get_weather"}], r_usage("responses1")))
    # Responses R2: streamed text.
    rid = "resp_sdk_r2"
    msg_id = "msg_sdk_r2"
    seq = iter(range(1000))
    def ev(kind, **fields):
        return (kind, {"type": kind, "sequence_number": next(seq), **fields})
    item_open = {"id": msg_id, "type": "message", "status": "in_progress", "content": [],
                 "role": "assistant"}
    part_done = {"type": "output_text", "annotations": [], "logprobs": [], "text": R_TEXT}
    item_done = {"id": msg_id, "type": "message", "status": "completed", "content": [part_done],
                 "role": "assistant"}
    loc = {"item_id": msg_id, "output_index": 0, "content_index": 0}
    events = [ev("response.created", response=response(rid, "in_progress", [], None)),
              ev("response.in_progress", response=response(rid, "in_progress", [], None)),
              ev("response.output_item.added", output_index=0, item=item_open),
              ev("response.content_part.added", **loc,
                 part={"type": "output_text", "annotations": [], "logprobs": [], "text": ""})]
    events += [ev("response.output_text.delta", **loc, delta=p, logprobs=[],
                  obfuscation="x" * (i + 1)) for i, p in enumerate(R_PIECES)]
    events += [ev("response.output_text.done", **loc, text=R_TEXT, logprobs=[]),
               ev("response.content_part.done", **loc, part=part_done),
               ev("response.output_item.done", output_index=0, item=item_done),
               ev("response.completed",
                  response=response(rid, "completed", [item_done], r_usage("responses2")))]
    serve_sse(m, "gpt-4o-mini-resp-stream", sse(events))


def anthropic_scenarios(m):
    def usage(turn, output=None):
        i, o = A_USAGE[turn]
        return {"input_tokens": i, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "output_tokens": o if output is None else output, "service_tier": "standard"}
    def message(mid, content, stop, u):
        return {"id": mid, "type": "message", "role": "assistant", "model": A_MODEL,
                "content": content, "stop_reason": stop, "stop_sequence": None, "usage": u}
    serve_json(m, "claude-x-tool", message("msg_sdk_a1", [
        {"type": "text", "text": A_TEXT1},
        {"type": "tool_use", "id": A_TOOL_ID, "name": "get_weather", "input": {"city": "Rome"}}],
        "tool_use", usage("turn1")))
    events = [("message_start", {"type": "message_start", "message": message(
                  "msg_sdk_a2", [], None, usage("turn2", output=1))}),
              ("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}}),
              ("ping", {"type": "ping"})]
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": p}})
               for p in A_PIECES]
    events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
               ("message_delta", {"type": "message_delta",
                                  "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                  "usage": {"output_tokens": A_USAGE["turn2"][1]}}),
               ("message_stop", {"type": "message_stop"})]
    serve_sse(m, "claude-x-stream", sse(events))
    serve_json(m, "claude-x-text", message("msg_sdk_a3", [{"type": "text", "text": A_TEXT3}],
                                           "end_turn", usage("turn3")))


# --- running the scripts -----------------------------------------------------

def need_sdk():
    node = shutil.which("node")
    missing = []
    if not node:
        missing.append("node (Node.js >= 20) is not on PATH")
    for pkg in ("openai", os.path.join("@anthropic-ai", "sdk")):
        if not os.path.isfile(os.path.join(SDK_DIR, "node_modules", pkg, "package.json")):
            missing.append(f"test/sdk/node_modules/{pkg} is missing")
    if missing:
        msg = ("SDK tests cannot run: " + "; ".join(missing) +
               ". Install Node.js 20+ and npm, then run `npm ci` in test/sdk "
               "(scripts/deps.sh and .ci/run do this).")
        print("*" * 72 + "\n*** " + msg + "\n" + "*" * 72, flush=True)
        raise TestFailure(msg)
    return node


def run_script(ctx, script):
    node = need_sdk()
    p = ctx.proxy
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "ANTHROPIC_", "NODE_OPTIONS"))}
    env.update(WHYOPS_BASE_URL=p.base, WHYOPS_KEY=p.key)
    try:
        r = subprocess.run([node, script], cwd=SDK_DIR, env=env, capture_output=True,
                           timeout=NODE_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise TestFailure(f"node {script} did not finish within {NODE_TIMEOUT}s; "
                          f"stderr: {(e.stderr or b'').decode(errors='replace')[-2000:]}")
    stdout = r.stdout.decode(errors="replace")
    stderr = r.stderr.decode(errors="replace")
    if r.returncode != 0:
        raise TestFailure(f"node {script} exited {r.returncode}\nstdout: {stdout[-3000:]}\n"
                          f"stderr: {stderr[-3000:]}\nproxy log tail:\n{p.log()[-2000:]}")
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    check(len(lines) == 1, f"node {script} printed one JSON line: {stdout!r}")
    out = json.loads(lines[0])
    eq(out.get("ok"), True, f"{script} result ok")
    return out


def records_for(m, scenario):
    return [r for r in m.records() if r["scenario"] == scenario]


def check_forwarded_headers(rec, dialect, whyops_key, exchange):
    names = [k.lower() for k, _ in rec["headers"]]
    check(not any(n.startswith("x-stainless") for n in names),
          f"SDK telemetry headers stay in the proxy: {names}")
    check(whyops_key not in json.dumps(rec["headers"]), "whyops key not forwarded")
    if dialect == "openai":
        eq(header(rec, "Authorization"), ["Bearer " + OPENAI_KEY], "provider key upstream")
    else:
        eq(header(rec, "x-api-key"), [ANTHROPIC_KEY], "provider key upstream")
        sent = exchange["sent"]["anthropic-version"]
        check(sent, f"the SDK sent an anthropic-version: {exchange}")
        eq(header(rec, "anthropic-version"), [sent], "the SDK's anthropic-version upstream")


def call_events(p, hdrs, first, what):
    """The events of one call, found by the X-Request-Id the SDK received."""
    check(hdrs and hdrs.get("x-request-id"), f"{what}: the SDK got an X-Request-Id: {hdrs}")
    rid = hdrs["x-request-id"]
    evs = p.events_for(rid)
    types = [e["eventType"] for e in evs]
    eq(types, [first, "llm_response"], f"{what}: event types")
    check(len({e["traceId"] for e in evs}) == 1, f"{what}: one trace id")
    if hdrs.get("x-trace-id"):
        eq(evs[0]["traceId"], hdrs["x-trace-id"], f"{what}: X-Trace-Id is the events' trace")
    for e in evs:
        eq(e["metadata"]["requestId"], rid, f"{what}: request id in metadata")
    return evs


def check_usage(ev, want, what):
    u = ev["metadata"].get("usage")
    check(u is not None, f"{what}: usage recorded: {ev['metadata']}")
    got = {k: u.get(k) for k in want}
    eq(got, want, f"{what}: usage")


def tool_calls(ev):
    return [(t["id"], t["type"], t["function"]["name"], t["function"]["arguments"])
            for t in ev["content"].get("toolCalls", [])]


# --- the proxy's trace marks ---------------------------------------------------
# With [trace] signature on (the default), the proxy appends an invisible
# signature (U+200B, the trace id's bits as U+200C/U+200D, U+200E) to answer
# texts and a "_whyops_trace_id" member to the arguments of tool-call-only
# answers, so that the next call of a stateless agent, which sends the answer
# back, is filed under the same trace.  The SDKs must carry the marks through
# their helpers; the upstream must never see them.

MARKS = "\u200b\u200c\u200d\u200e"
ARG_KEY = "_whyops_trace_id"


def unmark(text):
    return None if text is None else "".join(c for c in text if c not in MARKS)


def signature_ids(text):
    """The trace ids of the well-formed signatures in text."""
    ids = []
    for bits in re.findall("\u200b([\u200c\u200d]+)\u200e", text or ""):
        if len(bits) % 8 == 0:
            ids.append(bytes(int("".join("1" if c == "\u200c" else "0" for c in bits[i:i + 8]), 2)
                             for i in range(0, len(bits), 8)).decode("ascii", "replace"))
    return ids


def unmark_args(args):
    """Tool call arguments (JSON text or object) without the proxy's member,
    and the trace id that member held (or None)."""
    obj = json.loads(args) if isinstance(args, str) else dict(args)
    return {k: v for k, v in obj.items() if k != ARG_KEY}, obj.get(ARG_KEY)


def check_unmarked_upstream(recs):
    for rec in recs:
        check(not any(c in rec["body"] for c in MARKS)
              and not re.search(r"\\u200[b-eB-E]", rec["body"]) and ARG_KEY not in rec["body"],
              f"the proxy's marks are cleaned from the history sent upstream: {rec['body']}")


def check_deltas(deltas, pieces, what):
    """The helper's delta events: the upstream's pieces, plus at most one
    extra delta holding only the signature."""
    eq([d for d in deltas if unmark(d)], pieces, f"{what}: text deltas")
    check(len(deltas) - len(pieces) in (0, 1) and all(unmark(d) for d in deltas if
                                                     not signature_ids(d)),
          f"{what}: at most one signature-only delta: {deltas!r}")


def check_one_trace(p, hdrs, calls, marks, what):
    """Calls of one conversation belong to one trace once the proxy marks
    answers (trace identity); each mark names its call's trace."""
    traces = [p.events_for(hdrs[c]["x-request-id"])[0]["traceId"] for c in calls]
    for c, t in zip(calls, traces):
        if hdrs[c].get("x-trace-id"):
            eq(hdrs[c]["x-trace-id"], t, f"{what} {c}: X-Trace-ID")
    if not any(marks.values()):
        print(f"     note: {what}: the proxy did not mark answers; trace continuity not checked",
              flush=True)
        return
    eq(traces, [traces[0]] * len(traces), f"{what}: one trace for {calls}")
    for c, ids in marks.items():
        for i in ids:
            eq(i, traces[0], f"{what} {c}: trace id in the mark")


# --- the tests -------------------------------------------------------------

def test_sdk_openai_agent_loop(ctx):
    m, p = ctx.mock, ctx.proxy
    openai_scenarios(m)
    m.clear()
    out = run_script(ctx, "openai_loop.mjs")
    chat, resp, hdrs = out["chat"], out["responses"], out["headers"]

    # What the SDK assembled is what the upstream sent (less the proxy's marks).
    eq(chat["toolCallIds"], [OA_CALL_ID], "chat tool call ids")
    args1, tag1 = unmark_args(chat["toolCallArguments"])
    eq(args1, json.loads(OA_ARGS), "chat tool call arguments")
    eq(chat["toolResult"], OA_TOOL_RESULT, "tool result the script computed")
    eq(chat["turn1Usage"]["total_tokens"], 100, "turn 1 usage reached the SDK")
    eq(unmark(chat["turn2Text"]), OA_STREAM_TEXT, "finalChatCompletion() text")
    eq(chat["turn2Id"], "chatcmpl-sdk-t2", "finalChatCompletion() id")
    check_deltas(chat["turn2Deltas"], OA_STREAM_PIECES, "chat stream() content events")
    # The helper did not ask for usage: the proxy asked for it and kept the
    # usage chunk from the client.
    eq(chat["turn2Usage"], None, "no usage in a stream that did not ask for it")
    eq(chat["turn2ManualText"], chat["turn2Text"], "create({stream:true}) accumulated text")
    eq(chat["turn2ManualChunks"] - (len(chat["turn2Deltas"]) - len(OA_STREAM_PIECES)),
       len(OA_STREAM_PIECES) + 3, "every chunk, usage chunk included")
    eq(chat["turn2ManualUsage"]["total_tokens"], 131, "usage the client asked for")
    eq(unmark(chat["turn3Text"]), OA_TEXT3, "turn 3 text")
    eq(resp["callIds"], [R_CALL_ID], "responses call ids")
    rargs, rtag = unmark_args(resp["r1Arguments"])
    eq(rargs, json.loads(R_ARGS), "responses function call arguments")
    eq(resp["r2Id"], "resp_sdk_r2", "finalResponse() id")
    eq(unmark(resp["r2Text"]), R_TEXT, "finalResponse() output_text")
    check_deltas(resp["r2Deltas"], R_PIECES, "responses output_text delta events")
    eq(resp["r2Usage"]["total_tokens"], 104, "finalResponse() usage")
    calls = ("turn1", "turn2", "turn2Manual", "turn3", "responses1", "responses2")
    eq(sorted(hdrs), sorted(calls), "headers of every call")
    rids = [hdrs[c]["x-request-id"] for c in calls]
    check(all(rids) and len(set(rids)) == len(rids), f"distinct X-Request-Ids: {rids}")
    eq(chat["turn1RequestId"], hdrs["turn1"]["x-request-id"], "withResponse().request_id")
    eq([(x["path"], x["status"]) for x in out["exchanges"]],
       [("/v1/chat/completions", 200)] * 4 + [("/v1/responses", 200)] * 2, "HTTP exchanges")

    # What reached the upstream.
    t1, = records_for(m, "gpt-4o-mini-toolcall")
    t2, t2m = records_for(m, "gpt-4o-mini-stream")
    t3, = records_for(m, "gpt-4o-mini-text")
    r1, = records_for(m, "gpt-4o-mini-resp-tool")
    r2, = records_for(m, "gpt-4o-mini-resp-stream")
    eq(len(m.records()), 6, "six upstream requests")
    for rec in (t1, t2, t2m, t3):
        eq(rec["path"], "/v1/chat/completions", "chat path upstream")
    for rec in (r1, r2):
        eq(rec["path"], "/v1/responses", "responses path upstream")
    for rec, x in zip((t1, t2, t2m, t3, r1, r2), out["exchanges"]):
        check_forwarded_headers(rec, "openai", p.key, x)
    check_unmarked_upstream(m.records())
    b1, b2, b2m, b3 = (json.loads(r["body"]) for r in (t1, t2, t2m, t3))
    eq(len(b1["messages"]), 2, "turn 1 messages")
    check("stream" not in b1 or b1["stream"] is False, "turn 1 not streamed")
    eq(b2["stream"], True, "turn 2 streamed")
    eq(b2["stream_options"], {"include_usage": True}, "proxy asked for usage upstream")
    eq(b2m["stream_options"], {"include_usage": True}, "client asked for usage")
    for b in (b2, b2m):
        eq(len(b["messages"]), 4, "turn 2 messages")
        asst, tool = b["messages"][2], b["messages"][3]
        eq(asst["role"], "assistant", "assistant message carried over")
        eq([(c["id"], c["function"]["name"], c["function"]["arguments"])
            for c in asst["tool_calls"]], [(OA_CALL_ID, "get_weather", OA_ARGS)],
           "turn 1 tool call in turn 2's request")
        eq(tool, {"role": "tool", "tool_call_id": OA_CALL_ID, "content": OA_TOOL_RESULT},
           "tool result in turn 2's request")
    eq([x["role"] for x in b3["messages"]],
       ["system", "user", "assistant", "tool", "assistant", "user"], "turn 3 conversation")
    eq(b3["messages"][4]["content"], OA_STREAM_TEXT, "streamed answer carried into turn 3")
    rb2 = json.loads(r2["body"])
    eq(rb2["stream"], True, "R2 streamed")
    eq([x.get("type") for x in rb2["input"]], [None, "function_call", "function_call_output"],
       "R2 input items")
    eq((rb2["input"][1]["call_id"], rb2["input"][1]["arguments"]), (R_CALL_ID, R_ARGS),
       "R1's function call in R2's input")
    eq(rb2["input"][2], {"type": "function_call_output", "call_id": R_CALL_ID,
                         "output": R_TOOL_RESULT}, "function_call_output in R2's input")

    # The events of every call.
    e1 = call_events(p, hdrs["turn1"], "user_message", "turn 1")
    eq(e1[0]["content"]["content"], "What is the weather in Paris?", "turn 1 user text")
    eq(e1[0]["content"]["systemPrompt"], "You are a weather assistant. Use the tools.",
       "system prompt")
    eq(e1[0]["content"]["params"]["toolNames"], ["get_weather"], "tool names")
    eq(tool_calls(e1[-1]), [(OA_CALL_ID, "function", "get_weather", OA_ARGS)], "turn 1 toolCalls")
    eq(e1[-1]["content"]["finishReason"], "tool_calls", "turn 1 finish reason")
    check_usage(e1[-1], {"promptTokens": 82, "completionTokens": 18, "totalTokens": 100}, "turn 1")
    eq(e1[-1]["metadata"]["stream"], False, "turn 1 not streamed")
    eq(e1[-1]["metadata"]["endpoint"], "chat.completions", "turn 1 endpoint")
    for name, forced in (("turn2", True), ("turn2Manual", False)):
        e2 = call_events(p, hdrs[name], "tool_result", name)
        eq([(r["toolCallId"], r["content"]) for r in e2[0]["content"]["toolResults"]],
           [(OA_CALL_ID, OA_TOOL_RESULT)], f"{name} toolResults")
        eq(e2[0]["content"].get("messageCount"), 4, f"{name} message count")
        eq(e2[-1]["content"]["content"], OA_STREAM_TEXT, f"{name} streamed text rebuilt")
        eq(e2[-1]["content"]["finishReason"], "stop", f"{name} finish reason")
        eq(tool_calls(e2[-1]), [], f"{name} no tool calls")
        check_usage(e2[-1], {"promptTokens": 120, "completionTokens": 11, "totalTokens": 131},
                    name)
        eq(e2[-1]["metadata"]["stream"], True, f"{name} streamed")
        eq(e2[-1]["metadata"]["usageForced"], forced, f"{name} usageForced")
        eq(e2[-1]["metadata"].get("responseId"), "chatcmpl-sdk-t2", f"{name} response id")
    e3 = call_events(p, hdrs["turn3"], "user_message", "turn 3")
    eq(e3[0]["content"]["content"], "Thanks! Anything else I should know?", "turn 3 user text")
    eq(e3[-1]["content"]["content"], OA_TEXT3, "turn 3 text")
    check_usage(e3[-1], {"promptTokens": 150, "completionTokens": 14, "totalTokens": 164}, "turn 3")
    er1 = call_events(p, hdrs["responses1"], "user_message", "responses 1")
    eq(er1[0]["content"]["content"], "And in Berlin?", "R1 user text")
    eq(tool_calls(er1[-1]), [(R_CALL_ID, "function", "get_weather", R_ARGS)], "R1 toolCalls")
    check_usage(er1[-1], {"promptTokens": 60, "completionTokens": 15, "totalTokens": 75}, "R1")
    eq(er1[-1]["metadata"]["endpoint"], "responses", "R1 endpoint")
    er2 = call_events(p, hdrs["responses2"], "tool_result", "responses 2")
    eq([(r["toolCallId"], r["content"]) for r in er2[0]["content"]["toolResults"]],
       [(R_CALL_ID, R_TOOL_RESULT)], "R2 toolResults")
    eq(er2[-1]["content"]["content"], R_TEXT, "R2 streamed text rebuilt")
    check_usage(er2[-1], {"promptTokens": 95, "completionTokens": 9, "totalTokens": 104}, "R2")
    eq(er2[-1]["metadata"]["stream"], True, "R2 streamed")
    eq(er2[-1]["metadata"].get("responseId"), "resp_sdk_r2", "R2 response id")
    for c in calls:
        md = p.events_for(hdrs[c]["x-request-id"])[-1]["metadata"]
        check(not md.get("decoderNotes"), f"{c}: clean decode: {md.get('decoderNotes')}")

    # One trace per conversation, as the marks say.
    check_one_trace(p, hdrs, ["turn1", "turn2", "turn2Manual", "turn3"],
                    {"turn1": [tag1] if tag1 else [],
                     "turn2": signature_ids(chat["turn2Text"]),
                     "turn3": signature_ids(chat["turn3Text"])}, "chat")
    check_one_trace(p, hdrs, ["responses1", "responses2"],
                    {"responses1": [rtag] if rtag else [],
                     "responses2": signature_ids(resp["r2Text"])}, "responses")


def test_sdk_anthropic_agent_loop(ctx):
    m, p = ctx.mock, ctx.proxy
    anthropic_scenarios(m)
    m.clear()
    out = run_script(ctx, "anthropic_loop.mjs")
    hdrs = out["headers"]

    eq(out["toolUseIds"], [A_TOOL_ID], "tool_use ids")
    a_input, a_tag = unmark_args(out["toolInput"])
    eq(a_input, {"city": "Rome"}, "tool_use input")
    eq(out["toolResult"], A_TOOL_RESULT, "tool result the script computed")
    eq(unmark(out["turn1Text"]), A_TEXT1, "turn 1 text")
    eq(out["turn1Usage"]["input_tokens"], 350, "turn 1 usage reached the SDK")
    eq(unmark(out["turn2Text"]), A_TEXT2, "finalMessage() text")
    eq(out["turn2Id"], "msg_sdk_a2", "finalMessage() id")
    check_deltas(out["turn2Deltas"], A_PIECES, "messages.stream() text events")
    eq((out["turn2Usage"]["input_tokens"], out["turn2Usage"]["output_tokens"]), (410, 12),
       "finalMessage() usage (message_start + message_delta)")
    eq(unmark(out["turn3Text"]), A_TEXT3, "turn 3 text")
    calls = ("turn1", "turn2", "turn3")
    eq(sorted(hdrs), sorted(calls), "headers of every call")
    rids = [hdrs[c]["x-request-id"] for c in calls]
    check(all(rids) and len(set(rids)) == len(rids), f"distinct X-Request-Ids: {rids}")
    eq([(x["path"], x["status"]) for x in out["exchanges"]], [("/v1/messages", 200)] * 3,
       "HTTP exchanges")

    t1, = records_for(m, "claude-x-tool")
    t2, = records_for(m, "claude-x-stream")
    t3, = records_for(m, "claude-x-text")
    eq(len(m.records()), 3, "three upstream requests")
    for rec, x in zip((t1, t2, t3), out["exchanges"]):
        eq(rec["path"], "/v1/messages", "messages path upstream")
        check_forwarded_headers(rec, "anthropic", p.key, x)
    check_unmarked_upstream(m.records())
    b2, b3 = json.loads(t2["body"]), json.loads(t3["body"])
    eq(b2["stream"], True, "turn 2 streamed")
    eq([x["role"] for x in b2["messages"]], ["user", "assistant", "user"], "turn 2 conversation")
    eq([blk["type"] for blk in b2["messages"][1]["content"]], ["text", "tool_use"],
       "assistant content carried over")
    eq(b2["messages"][1]["content"][0]["text"], A_TEXT1, "turn 1 text carried over")
    eq((b2["messages"][1]["content"][1]["id"], b2["messages"][1]["content"][1]["input"]),
       (A_TOOL_ID, {"city": "Rome"}), "tool_use carried over")
    eq(b2["messages"][2]["content"], [{"type": "tool_result", "tool_use_id": A_TOOL_ID,
                                       "content": A_TOOL_RESULT}], "tool_result in turn 2")
    eq([x["role"] for x in b3["messages"]], ["user", "assistant", "user", "assistant", "user"],
       "turn 3 conversation")
    eq(b3["messages"][3]["content"], [{"type": "text", "text": A_TEXT2}],
       "finalMessage() content carried into turn 3")

    e1 = call_events(p, hdrs["turn1"], "user_message", "turn 1")
    eq(e1[0]["content"]["content"], "What is the weather in Rome?", "turn 1 user text")
    eq(e1[0]["content"]["systemPrompt"], "You are a weather assistant. Use the tools.",
       "system prompt")
    eq(e1[-1]["content"]["content"], A_TEXT1, "turn 1 text")
    eq(tool_calls(e1[-1]), [(A_TOOL_ID, "function", "get_weather", '{"city":"Rome"}')],
       "turn 1 toolCalls")
    eq(e1[-1]["content"]["finishReason"], "tool_use", "turn 1 stop reason")
    check_usage(e1[-1], {"promptTokens": 350, "completionTokens": 42}, "turn 1")
    eq(e1[-1]["metadata"]["endpoint"], "messages", "endpoint")
    e2 = call_events(p, hdrs["turn2"], "tool_result", "turn 2")
    eq([(r["toolCallId"], r["content"]) for r in e2[0]["content"]["toolResults"]],
       [(A_TOOL_ID, A_TOOL_RESULT)], "turn 2 toolResults")
    eq(e2[-1]["content"]["content"], A_TEXT2, "turn 2 streamed text rebuilt")
    eq(e2[-1]["content"]["finishReason"], "end_turn", "turn 2 stop reason")
    check_usage(e2[-1], {"promptTokens": 410, "completionTokens": 12}, "turn 2")
    eq(e2[-1]["metadata"]["stream"], True, "turn 2 streamed")
    eq(e2[-1]["metadata"].get("responseId"), "msg_sdk_a2", "turn 2 response id")
    e3 = call_events(p, hdrs["turn3"], "user_message", "turn 3")
    eq(e3[0]["content"]["content"], "Thanks! Anything else?", "turn 3 user text")
    eq(e3[-1]["content"]["content"], A_TEXT3, "turn 3 text")
    check_usage(e3[-1], {"promptTokens": 440, "completionTokens": 9}, "turn 3")
    for evs in (e1, e2, e3):
        check(not evs[-1]["metadata"].get("decoderNotes"),
              f"clean decode: {evs[-1]['metadata'].get('decoderNotes')}")

    check_one_trace(p, hdrs, list(calls),
                    {"turn1": signature_ids(out["turn1Text"]) + ([a_tag] if a_tag else []),
                     "turn2": signature_ids(out["turn2Text"]),
                     "turn3": signature_ids(out["turn3Text"])}, "anthropic")
