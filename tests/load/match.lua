-- Match calls against the registry, for wrk: wrk -t1 -c16 -d25s -s tests/load/match.lua URL
--
-- Environment: LOAD_KEY (the partner's API key), LOAD_QUERIES (a file of hashes in text form,
-- one a line), LOAD_BATCH (hashes a call: 1 for single-hash calls, 100 for batches; 0 for the
-- bare endpoint, GET /health: what the server, its workers and nginx cost without the registry).
-- The request bodies are built once, in init(), so that wrk's one thread spends its time
-- sending and timing requests, not building strings. done() prints one line of JSON, prefixed
-- with LOAD_RESULT, that tests/load/harness.py reads.

local batch = tonumber(os.getenv("LOAD_BATCH") or "1")
local bodies = {}
local next_body = 0

wrk.method = "POST"
wrk.path = "/api/v1/match"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("LOAD_KEY")

function init(args)
   if batch == 0 then
      wrk.method = "GET"
      wrk.path = "/health"
      wrk.headers["Content-Type"] = nil
      wrk.headers["Authorization"] = nil
      bodies[1] = wrk.format(nil, nil, nil, nil)
      return
   end
   local queries = {}
   for line in io.lines(os.getenv("LOAD_QUERIES")) do
      queries[#queries + 1] = line
   end
   local count = math.max(1, math.min(2000, math.floor(#queries / batch)))
   for i = 0, count - 1 do
      local parts = {}
      for j = 1, batch do
         parts[j] = '"' .. queries[(i * batch + j - 1) % #queries + 1] .. '"'
      end
      local body = '{"purpose":"publish","hashes":[' .. table.concat(parts, ",") .. "]}"
      bodies[i + 1] = wrk.format(nil, nil, nil, body)
   end
end

function request()
   next_body = next_body % #bodies + 1
   return bodies[next_body]
end

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      'LOAD_RESULT {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,' ..
      '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
      summary.requests, summary.duration, errors.status,
      errors.connect + errors.read + errors.write + errors.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end
