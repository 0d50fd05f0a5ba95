-- wrk script: cycles over a fixed list of request paths and prints one machine-readable line.
--   wrk ... -s load_testing/bench/urls.lua http://127.0.0.1:PORT -- URLS_FILE
-- URLS_FILE: one path per line (`#` comments and blank lines ignored). Requests are formatted
-- once in init() (with wrk.headers, i.e. any -H such as `Connection: close`), so the per-request
-- cost in wrk is one table lookup. Each thread starts at a different offset.

local requests = {}
local n = 0
local i = 0

function init(args)
  local file = args[1] or "load_testing/bench/urls.txt"
  for line in io.lines(file) do
    if line ~= "" and line:sub(1, 1) ~= "#" then
      n = n + 1
      requests[n] = wrk.format("GET", line)
    end
  end
  assert(n > 0, "no URLs in " .. file)
  i = math.random(0, n - 1)
end

function request()
  i = i + 1
  if i > n then
    i = 1
  end
  return requests[i]
end

function done(summary, latency, requests_stats)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d bytes=%d err_connect=%d err_read=%d err_write=%d " ..
    "err_status=%d err_timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
