-- get_account.lua: GET /v1/accounts/{id} for random ids among acc00001 ... acc<N>.
-- The same script drives the nginx reference, so both sides pay the same client cost.
-- Arguments (after --): N, the number of accounts (default 10000), and optionally AUTHORIZATION,
-- the value of an Authorization header sent with every request (bench/auth.sh: "Bearer <token>").
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local report = dofile(dir .. "report.lua")

local accounts = 10000
local headers = nil

function setup(thread)
   report.setup(thread)
end

function init(args)
   accounts = tonumber(args[1]) or accounts
   if args[2] and args[2] ~= "" then
      headers = {["Authorization"] = args[2]}
   end
   math.randomseed(os.time() + (tid or 0))
end

function request()
   return wrk.format("GET", string.format("/v1/accounts/acc%05d", math.random(accounts)), headers)
end

function done(summary, latency, requests)
   report.done(summary, latency)
end
