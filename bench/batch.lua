-- batch.lua: POST /v1/transfers/batch with SIZE transfers per request (default 8190, the
-- limit), between random distinct accounts among acc00001 ... acc<N>, amount "1". The account
-- pairs of a few bodies are made up front; each request gets fresh ids
-- TAG-<thread>-<request>-<item>. Counts 200 answers and the items whose result is "created".
-- Arguments (after --): TAG N SIZE.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local report = dofile(dir .. "report.lua")

local tag, accounts, size = "b", 10000, 8190
local tails = {}
local n = 0
ok, failed, created = 0, 0, 0

function setup(thread)
   report.setup(thread)
end

function init(args)
   tag = args[1] or tag
   accounts = tonumber(args[2]) or accounts
   size = tonumber(args[3]) or size
   math.randomseed(os.time() * 100 + (tid or 0))
   for b = 1, 4 do
      local t = {}
      for i = 1, size do
         local debit = math.random(accounts)
         local credit = math.random(accounts - 1)
         if credit >= debit then
            credit = credit + 1
         end
         t[i] = string.format('","debit_account_id":"acc%05d","credit_account_id":"acc%05d",' ..
            '"amount":"1","ledger":"USD","code":1}', debit, credit)
      end
      tails[b] = t
   end
end

function request()
   n = n + 1
   local head = string.format('{"id":"%s-%d-%d-', tag, tid or 1, n)
   local tail = tails[(n % #tails) + 1]
   local items = {}
   for i = 1, size do
      items[i] = head .. i .. tail[i]
   end
   local body = '{"transfers":[' .. table.concat(items, ",") .. "]}"
   return wrk.format("POST", "/v1/transfers/batch", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
   if status == 200 then
      ok = ok + 1
      local _, c = body:gsub('"result":"created"', "")
      created = created + c
   else
      failed = failed + 1
   end
end

function done(summary, latency, requests)
   report.done(summary, latency, {"ok", "failed", "created"})
end
