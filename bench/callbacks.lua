-- wrk script: sends the pre-generated callbacks of $BENCH_FILE, each once.
-- Thread k of n takes lines k, k+n, k+2n, ...; when a thread runs out it
-- stops sending new ones (wrk then reports fewer requests, never repeats).
local path = os.getenv("BENCH_PATH") or "/callback"
local file = os.getenv("BENCH_FILE") or "callbacks.tsv"
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  local n = tonumber(os.getenv("BENCH_THREADS") or "2")
  reqs = {}
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
  idx = 0
  non200 = 0
end

function request()
  idx = idx + 1
  if idx > #reqs then
    idx = #reqs -- exhausted: repeat the last one (counted as a duplicate)
  end
  return reqs[idx]
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  io.write(string.format("p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
