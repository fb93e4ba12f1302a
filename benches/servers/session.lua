-- wrk script for scripts/bench: one session per connection, the rolling
-- cookie sent back on every request.
--
-- wrk's Lua callbacks are per thread, not per connection, so scripts/bench
-- runs wrk with as many threads as connections (-t N -c N): each thread's
-- Lua state then holds exactly one connection's session, and since wrk
-- sends a connection's next request only after its response arrived, the
-- cookie captured in response() is the one request() sends next.
--
-- A connection first logs in (POST /login), then sends GET / with the
-- last Set-Cookie value it received (rolling-session answers every request
-- with the next token; tower-sessions with the same id). A non-200 answer
-- drops the session and logs in again; done() prints how often that
-- happened so a broken run cannot pass for a fast one.

logins = 0
rejected = 0
local logged_in = false
local cookie = nil

function request()
  if not logged_in then
    logins = logins + 1
    return wrk.format("POST", "/login", { ["Content-Length"] = "0" }, "")
  end
  if cookie then
    return wrk.format("GET", "/", { ["Cookie"] = cookie })
  end
  return wrk.format("GET", "/")
end

function response(status, headers, body)
  if status ~= 200 then
    rejected = rejected + 1
    logged_in = false
    cookie = nil
    return
  end
  logged_in = true
  local set = headers["set-cookie"] or headers["Set-Cookie"]
  if set then
    local pair = set:match("^%s*([^;]+)")
    if pair and not pair:match("=%s*$") then
      cookie = pair
    end
  end
end

-- In the main Lua state: collect the threads, then sum their counters.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local l, r = 0, 0
  for _, t in ipairs(threads) do
    l = l + t:get("logins")
    r = r + t:get("rejected")
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d socket_errors=%d non2xx=%d logins=%d rejected=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status, l, r))
end
