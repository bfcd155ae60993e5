-- wrk script of benchmarks/bench_proxies.py: rotates through pre-minted requests, one per identity.
-- Usage: wrk ... -s proxy_rotate.lua http://127.0.0.1:PORT/ -- REQUESTS_FILE
-- REQUESTS_FILE holds "<method> <host> <path> <token>" lines. Every request is formatted once in
-- init(), so request() only hands out a ready string and wrk stays cheap per request. done()
-- prints one "policyhub-result {json}" line; wrk counts responses with a status >= 400 in
-- summary.errors.status, so no response() hook (which parses every response into Lua) is needed.

local threads = {}
local requests = {}
local position = 1

function setup(thread)
  thread:set("number", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(args[1], "usage: wrk ... -- REQUESTS_FILE")
  for line in io.lines(file) do
    local method, host, path, token = line:match("^(%S+) (%S+) (%S+) (%S+)$")
    assert(method, "malformed line in " .. file .. ": " .. line)
    requests[#requests + 1] = wrk.format(method, path, { Host = host, Authorization = "Bearer " .. token })
  end
  assert(#requests > 0, file .. " holds no requests")
  -- several threads start at different identities instead of sending the same ones in step
  position = (number * 7919) % #requests + 1
end

function request()
  local ready = requests[position]
  position = position % #requests + 1
  return ready
end

function done(summary, latency, _)
  local errors = summary.errors
  io.write(string.format(
    'policyhub-result {"requests": %d, "duration_us": %d, "status_errors": %d, "connect_errors": %d, '
      .. '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, errors.status, errors.connect, errors.read, errors.write,
    errors.timeout, latency:percentile(50), latency:percentile(99)
  ))
end
