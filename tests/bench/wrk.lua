-- wrk script for scripts/bench (tests/bench/bench.py). Configured by environment variables:
--   BENCH_METHOD  GET | POST | PATCH
--   BENCH_PATHS   request paths separated by spaces, used round-robin (per thread)
--   BENCH_AUTH    the Authorization header value
--   BENCH_BODY    none | scim_post | jsonapi_post | scim_patch | jsonapi_patch
--   BENCH_UUIDS   for jsonapi_patch: the user ids matching BENCH_PATHS, same order
-- response() counts non-2xx answers per thread; done() prints one line "BENCH {json}" with the counts and latency percentiles (µs).

local method = os.getenv("BENCH_METHOD") or "GET"
local auth = os.getenv("BENCH_AUTH") or ""
local body_kind = os.getenv("BENCH_BODY") or "none"

local function split(s)
  local out = {}
  for w in string.gmatch(s or "", "%S+") do out[#out + 1] = w end
  return out
end

local paths = split(os.getenv("BENCH_PATHS"))
local uuids = split(os.getenv("BENCH_UUIDS"))

-- tid and suffix are globals: setup() (main Lua state) overwrites them in each thread's state.
local counter = 0
tid = 0
suffix = "x"
local nthreads = 0
local threads = {}

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  math.randomseed(os.time() * 1000 + nthreads)
  thread:set("suffix", string.format("%08x", math.random(0, 0x7fffffff)))
  threads[#threads + 1] = thread
end

local scim_headers = { ["Authorization"] = auth, ["Content-Type"] = "application/scim+json",
                       ["Accept"] = "application/scim+json" }
local jsonapi_headers = { ["Authorization"] = auth, ["Content-Type"] = "application/vnd.api+json",
                          ["Accept"] = "application/vnd.api+json" }

local patch_scim = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],' ..
  '"Operations":[{"op":"replace","path":"active","value":false}]}'

function request()
  counter = counter + 1
  -- threads start at different offsets so they do not all hit the same user at once
  local i = ((counter + (tid or 0) * 7) % #paths) + 1
  local path = paths[i]
  if body_kind == "none" then
    return wrk.format(method, path, scim_headers)
  elseif body_kind == "scim_post" then
    local name = string.format("bench-s-%s-%d-%d", suffix, tid, counter)
    local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. name ..
      '","emails":[{"value":"' .. name .. '@example.com","type":"work","primary":true}],"active":true}'
    return wrk.format("POST", path, scim_headers, body)
  elseif body_kind == "jsonapi_post" then
    local name = string.format("bench-j-%s-%d-%d", suffix, tid, counter)
    local body = '{"data":{"type":"user--user","attributes":{"name":"' .. name ..
      '","mail":"' .. name .. '@example.com","status":true}}}'
    return wrk.format("POST", path, jsonapi_headers, body)
  elseif body_kind == "scim_patch" then
    return wrk.format("PATCH", path, scim_headers, patch_scim)
  elseif body_kind == "jsonapi_patch" then
    local body = '{"data":{"type":"user--user","id":"' .. uuids[i] ..
      '","attributes":{"status":false}}}'
    return wrk.format("PATCH", path, jsonapi_headers, body)
  end
end

non2xx = 0
last_bad = 0

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    last_bad = status
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local bad, last = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non2xx") or 0)
    local l = t:get("last_bad") or 0
    if l ~= 0 then last = l end
  end
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"bytes":%d,"http_errors":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"non2xx":%d,"last_bad_status":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write,
    e.timeout, bad, last, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
