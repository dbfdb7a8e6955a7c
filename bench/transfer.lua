-- transfer.lua: POST /v1/transfers, one transfer per request, each with a unique id and a unique
-- Idempotency-Key, between two random distinct accounts among acc00001 ... acc<N>, amount "1".
-- Counts answers by status, and appends the id of every 2xx (acknowledged) transfer to
-- IDS_PREFIX-<thread>.ids, so bench/run.sh can check that each one is in the database.
-- Arguments (after --): TAG N IDS_PREFIX [AUTHORIZATION]. TAG makes ids unique across runs;
-- AUTHORIZATION, when given, is the value of an Authorization header sent with every request
-- (bench/auth.sh: "Bearer <token>").
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local report = dofile(dir .. "report.lua")

local tag, accounts, ids, authorization = "t", 10000, nil, nil
local n = 0
acked, rejected_503, other = 0, 0, 0

function setup(thread)
   report.setup(thread)
end

function init(args)
   tag = args[1] or tag
   accounts = tonumber(args[2]) or accounts
   if args[3] then
      ids = io.open(string.format("%s-%d.ids", args[3], tid or 1), "w")
   end
   if args[4] and args[4] ~= "" then
      authorization = args[4]
   end
   math.randomseed(os.time() * 100 + (tid or 0))
end

function request()
   n = n + 1
   local id = string.format("%s-%d-%d", tag, tid or 1, n)
   local debit = math.random(accounts)
   local credit = math.random(accounts - 1)
   if credit >= debit then
      credit = credit + 1
   end
   local body = string.format('{"id":"%s","debit_account_id":"acc%05d",' ..
      '"credit_account_id":"acc%05d","amount":"1","ledger":"USD","code":1}', id, debit, credit)
   local headers = {["Content-Type"] = "application/json", ["Idempotency-Key"] = "k-" .. id}
   if authorization then
      headers["Authorization"] = authorization
   end
   return wrk.format("POST", "/v1/transfers", headers, body)
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      acked = acked + 1
      if ids then
         ids:write(body:match('^{"id":"([^"]+)"') or "?", "\n")
      end
   elseif status == 503 then
      rejected_503 = rejected_503 + 1
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   -- Upper bound on the p99 of admitted (non-503) requests: the latency that only 1% of the
   -- admitted count exceeds among all answers. Exact when no 503 is slower than it.
   local answered = report.sum("acked") + report.sum("rejected_503") + report.sum("other")
   local share = 0
   if answered > 0 then
      share = report.sum("rejected_503") / answered
   end
   local q = 100 - (1 - share)
   report.done(summary, latency, {"acked", "rejected_503", "other"},
      {p99_admitted_ub_ms = latency:percentile(q) / 1000})
end
