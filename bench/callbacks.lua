-- wrk script: sends pre-generated, correctly signed callbacks, each once.
--
-- BENCH_FILE=F (gen_callbacks.py's TSV): thread k of n formats lines k,
--   k+n, ... in init(). Simple, but init() runs in wrk's main thread before
--   each worker starts, and formatting ~375k lines takes seconds: the first
--   thread is already sending while the second is still being set up, which
--   skews wrk's requests/s. Fine for small files.
-- BENCH_RAW=1: F.1, F.2, ... hold thread k's complete HTTP requests,
--   separated by NUL bytes (bench/run.py writes them); init() only splits,
--   in well under a second for a few hundred thousand requests.
--
-- A thread that runs out repeats its last request (a duplicate, answered
-- 200 but not unique) and done() reports how often ("repeated="), so that
-- the caller knows to generate more. BENCH_CYCLE=1 wraps around instead (for
-- the static ceiling, where the body does not matter). No response()
-- function: defining one makes wrk parse every response in Lua, which costs
-- the client CPU it shares with the server; wrk counts non-2xx by itself.
local path = os.getenv("BENCH_PATH") or "/callback"
local file = os.getenv("BENCH_FILE") or "callbacks.tsv"
local raw = os.getenv("BENCH_RAW") == "1"
local cycle = os.getenv("BENCH_CYCLE") == "1"
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

local function load_raw()
  local f = assert(io.open(file .. "." .. tid, "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while pos <= #data do
    local s = data:find("\0", pos, true)
    if s == nil then
      reqs[#reqs + 1] = data:sub(pos)
      break
    end
    reqs[#reqs + 1] = data:sub(pos, s - 1)
    pos = s + 1
  end
end

local function load_tsv()
  local n = tonumber(os.getenv("BENCH_THREADS") or "2")
  local i = 0
  for line in io.lines(file) do
    if i % n == tid - 1 then
      local inv, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", path, {
        ["Content-Type"] = "application/json",
        ["X-Webhook-Event"] = "payment.paid",
        ["X-Webhook-Signature"] = sig,
        ["X-Webhook-Timestamp"] = ts,
        ["X-Invoice-ID"] = inv,
      }, body)
    end
    i = i + 1
  end
end

function init(args)
  reqs = {}
  if raw then load_raw() else load_tsv() end
  idx = 0
  exhausted = 0
end

function request()
  idx = idx + 1
  if idx > #reqs then
    if cycle then
      idx = 1
    else
      idx = #reqs
      exhausted = exhausted + 1
    end
  end
  return reqs[idx]
end

function done(summary, latency, requests)
  local ex = 0
  for _, t in ipairs(threads) do
    ex = ex + (t:get("exhausted") or 0)
  end
  io.write(string.format("bench: p50=%.3fms p99=%.3fms max=%.3fms repeated=%d\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, ex))
end
