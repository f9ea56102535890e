-- bench/bench.lua - the wrk script of bench/run.sh (every target gets the
-- same request).
--
--   wrk -t1 -c64 -d8s -s bench/bench.lua URL -- BODY_FILE EXPECT_LEN [KEY]
--
-- BODY_FILE   request body, POSTed as application/json
-- EXPECT_LEN  byte length of the (de-chunked) answer body; a 200 with any
--             other length counts as a bad body (a truncated stream, an
--             answer from the wrong scenario).  -1: do not check.
-- KEY         sent as "Authorization: Bearer KEY" (the whyops key; the
--             direct and nginx targets get it too and ignore it).
--
-- done() prints one machine-readable line, "BENCH k=v k=v ...", latencies
-- in microseconds, plus "BENCH_SAMPLE ..." with the first bad answer seen.

local threads = {}

function setup(thread)
	table.insert(threads, thread)
end

function init(args)
	local f = assert(io.open(args[1], "rb"))
	wrk.body = f:read("*a")
	f:close()
	wrk.method = "POST"
	wrk.headers["Content-Type"] = "application/json"
	if args[3] ~= nil and args[3] ~= "" then
		wrk.headers["Authorization"] = "Bearer " .. args[3]
	end
	expect = tonumber(args[2]) or -1
	ok, non200, badbody = 0, 0, 0
	sample = ""
end

function response(status, headers, body)
	local n = body and #body or 0

	if status ~= 200 then
		non200 = non200 + 1
		if sample == "" then
			sample = "status " .. status .. ": " ..
			    string.sub(body or "", 1, 160)
		end
	elseif expect >= 0 and n ~= expect then
		badbody = badbody + 1
		if sample == "" then
			sample = "status 200 with " .. n .. " body bytes, expected " ..
			    expect .. ": ..." .. string.sub(body or "", -80)
		end
	else
		ok = ok + 1
	end
end

function done(summary, latency, requests)
	local nok, nnon, nbad, smp = 0, 0, 0, ""
	local e = summary.errors

	for _, t in ipairs(threads) do
		nok = nok + (t:get("ok") or 0)
		nnon = nnon + (t:get("non200") or 0)
		nbad = nbad + (t:get("badbody") or 0)
		if smp == "" then
			smp = t:get("sample") or ""
		end
	end
	io.write(string.format("BENCH requests=%d duration_us=%d bytes=%d " ..
	    "connect=%d read=%d write=%d status=%d timeout=%d " ..
	    "ok=%d non200=%d badbody=%d " ..
	    "p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f\n",
	    summary.requests, summary.duration, summary.bytes,
	    e.connect, e.read, e.write, e.status, e.timeout,
	    nok, nnon, nbad,
	    latency:percentile(50), latency:percentile(90),
	    latency:percentile(99), latency.max, latency.mean))
	if smp ~= "" then
		io.write("BENCH_SAMPLE ", (smp:gsub("[%c|]", " ")), "\n")
	end
end
