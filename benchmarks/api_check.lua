-- wrk script of benchmarks/bench_api.py: POSTs pre-generated decisions/check bodies in rotation.
-- Usage: wrk ... -s api_check.lua http://127.0.0.1:PORT/ -- BODIES_FILE TOKEN_FILE
-- BODIES_FILE holds one JSON request body a line; TOKEN_FILE the service token (not on the command
-- line, where ps shows it). Every request is formatted once in init(), so
-- request() only hands out a ready string. response() counts answers that are not 2xx (wrk's own
-- summary.errors.status counts only >= 400, and a redirect would pass unnoticed) and the 2xx
-- answers that allowed; done() adds up the threads' counts and prints one
-- "policyhub-result {json}" line.

local threads = {}
local requests = {}
local position = 1
answered = 0
non_2xx = 0
allowed = 0

function setup(thread)
  thread:set("number", #threads)
  table.insert(threads, thread)
end

function init(args)
  assert(args[1] and args[2], "usage: wrk ... -- BODIES_FILE TOKEN_FILE")
  local file = args[1]
  local token = io.lines(args[2])()
  local headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    -- as behind the TLS-terminating proxy production runs behind (SECURE_PROXY_SSL_HEADER_NAME)
    ["X-Forwarded-Proto"] = "https",
  }
  for line in io.lines(file) do
    requests[#requests + 1] = wrk.format("POST", "/api/v1/decisions/check", headers, line)
  end
  assert(#requests > 0, file .. " holds no request bodies")
  -- several threads start at different bodies instead of sending the same ones in step
  position = (number * 7919) % #requests + 1
end

function request()
  local ready = requests[position]
  position = position % #requests + 1
  return ready
end

function response(status, _, body)
  answered = answered + 1
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
  elseif body:find('"allowed":true', 1, true) then
    allowed = allowed + 1
  end
end

function done(summary, latency, _)
  local totals = { answered = 0, non_2xx = 0, allowed = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
  end
  local errors = summary.errors
  io.write(string.format(
    'policyhub-result {"requests": %d, "duration_us": %d, "answered": %d, "non_2xx": %d, "allowed": %d, '
      .. '"socket_errors": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, totals.answered, totals.non_2xx, totals.allowed,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max
  ))
end
