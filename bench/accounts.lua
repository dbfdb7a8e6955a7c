-- accounts.lua: creates acc00001 ... acc<N> with POST /v1/accounts (ledger USD, code 1, no
-- balance-limit flags). Run with one wrk thread: once every account has been answered, it
-- writes the file DONE_FILE and stops its thread; bench/run.sh then ends wrk with SIGINT.
-- Requests issued after the last account are harmless GET /livez.
-- Arguments (after --): N DONE_FILE.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local report = dofile(dir .. "report.lua")

local accounts, done_file = 10000, nil
local issued, calls = 0, 0
created, failed, answered = 0, 0, 0

function setup(thread)
   report.setup(thread)
end

function init(args)
   accounts = tonumber(args[1]) or accounts
   done_file = args[2]
end

function request()
   -- wrk calls request() once before the run to check it parses: that one is never sent.
   calls = calls + 1
   if calls == 1 then
      return wrk.format("GET", "/livez")
   end
   issued = issued + 1
   if issued > accounts then
      return wrk.format("GET", "/livez")
   end
   local body = string.format('{"id":"acc%05d","ledger":"USD","code":1}', issued)
   return wrk.format("POST", "/v1/accounts", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
   if body:sub(1, 10) == '{"status":' then
      return
   end
   answered = answered + 1
   if status == 201 or status == 200 then
      created = created + 1
   else
      failed = failed + 1
   end
   if answered == accounts then
      if done_file then
         local f = io.open(done_file, "w")
         f:write(string.format("%d %d\n", created, failed))
         f:close()
      end
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   report.done(summary, latency, {"created", "failed"})
end
