-- wrk script: POST pre-signed token requests, one line of BENCH_REQUESTS
-- ("form body<TAB>DPoP proof") per request, never reused (single-use ids):
-- thread k of BENCH_THREADS takes lines k, k+n, k+2n, ... When a thread
-- runs out it sends its last line again, which the server must refuse as a
-- replay (counted in non2xx): generate enough lines for the run.
-- Prints the RESULT line of ../shared/bench/peer-oidc-provider/token_post.lua.
local file = os.getenv("BENCH_REQUESTS")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
local close = os.getenv("BENCH_CONN_CLOSE") == "1"
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  jwt_ok = 0
  exhausted = 0
  lines = {}
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == tid then table.insert(lines, line) end
    i = i + 1
  end
  idx = 0
end

function request()
  idx = idx + 1
  local line = lines[idx]
  if not line then
    exhausted = exhausted + 1
    line = lines[#lines]
  end
  local tab = line:find("\t", 1, true)
  local body, proof = line:sub(1, tab - 1), line:sub(tab + 1)
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Accept"] = "application/json" }
  if #proof > 0 then headers["DPoP"] = proof end
  if close then headers["Connection"] = "close" end
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, resp_body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 and resp_body then
    local s, e, tok = resp_body:find('"access_token"%s*:%s*"([%w%-_]+%.[%w%-_]+%.[%w%-_]+)"')
    if tok and tok:sub(1, 3) == "eyJ" then jwt_ok = jwt_ok + 1 end
  end
end

function done(summary, latency, requests)
  local agg, ok, ex = {}, 0, 0
  for _, t in ipairs(threads) do
    local st = t:get("statuses")
    if st then for k, v in pairs(st) do agg[k] = (agg[k] or 0) + v end end
    ok = ok + (t:get("jwt_ok") or 0)
    ex = ex + (t:get("exhausted") or 0)
  end
  local non2xx = 0
  local parts = {}
  for k, v in pairs(agg) do
    if k < 200 or k > 299 then non2xx = non2xx + v end
    table.insert(parts, k .. ":" .. v)
  end
  table.sort(parts)
  local e = summary.errors
  local dur = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d duration_s=%.2f rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d jwt_ok=%s exhausted=%d status=%s\n",
    summary.requests, dur, summary.requests / dur,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    non2xx, e.connect + e.read + e.write + e.timeout,
    tostring(ok), ex, table.concat(parts, ",")))
end
