-- Load for wrk, POST /deposit or GET /check/<wallet>:
--   wrk ... -s load.lua <url> -- post <key prefix> <wallets>
--   wrk ... -s load.lua <url> -- get <unused> <wallets>
-- Deposits carry a unique Idempotency-Key per request; wallets cycle over a fixed set
-- of ids (for GET, ones the bench deposited to first). Answers other than the expected
-- status are counted (wrk itself counts only statuses above 399). done() prints one
-- line, BENCH_JSON {...}, that bench/ reads.

local threads = {}

function setup(thread)
  -- Each thread has its own Lua state; its id keeps keys unique across threads.
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

local kind, prefix, wallets, expected
local sent = 0
unexpected = 0

function init(args)
  kind = args[1]
  prefix = args[2]
  wallets = tonumber(args[3])
  expected = kind == "post" and 202 or 200
end

function request()
  sent = sent + 1
  if kind == "get" then
    return wrk.format("GET", string.format("/check/w%d", sent % wallets))
  end
  local body = string.format('{"wallet_id":"w%d","amount":"1.23"}', sent % wallets)
  local headers = { ["Content-Type"] = "application/json", ["Idempotency-Key"] = string.format("%s-%d-%d", prefix, thread_id, sent) }
  return wrk.format("POST", "/deposit", headers, body)
end

function response(status)
  if status ~= expected then unexpected = unexpected + 1 end
end

function done(summary, latency)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("unexpected") end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"unexpected_status":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, total, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
