wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer <token>"
local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
local n = 0
function request()
  n = n + 1
  local body = string.format(
    '{"bookmark":{"title":"wrk write bench %d-%d","url":"https://example.com/writes/%d/%d",' ..
    '"description":"A benchmark bookmark posted by wrk, about as long as a corpus description.",' ..
    '"public":true,"tags":["bench","wrk","http"]}}', tid, n, tid, n)
  return wrk.format(nil, "/api/bookmarks", nil, body)
end

function done(summary, latency, requests)
  local failed = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("WRKRESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    summary.errors.status, failed))
end
