-- report.lua: shared by the bench/*.lua wrk scripts. Keeps the list of wrk threads, and at the
-- end prints one machine-readable "BENCH key=value ..." line that bench/run.sh parses, after
-- wrk's own --latency report. Latencies are in milliseconds, rates per second.
-- Counters named in `counters` are summed over threads (each thread keeps them as globals).

local report = {}
local threads = {}

function report.setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

function report.sum(name)
   local total = 0
   for _, t in ipairs(threads) do
      total = total + (t:get(name) or 0)
   end
   return total
end

-- extra: table of key -> number printed after the standard fields.
function report.done(summary, latency, counters, extra)
   local e = summary.errors
   local seconds = summary.duration / 1e6
   local fields = {
      string.format("requests=%d", summary.requests),
      string.format("seconds=%.3f", seconds),
      string.format("rps=%.1f", summary.requests / seconds),
      string.format("p50_ms=%.3f", latency:percentile(50) / 1000),
      string.format("p90_ms=%.3f", latency:percentile(90) / 1000),
      string.format("p99_ms=%.3f", latency:percentile(99) / 1000),
      string.format("max_ms=%.3f", latency.max / 1000),
      string.format("status_errors=%d", e.status),
      string.format("socket_errors=%d", e.connect + e.read + e.write),
      string.format("timeouts=%d", e.timeout),
   }
   for _, name in ipairs(counters or {}) do
      table.insert(fields, string.format("%s=%d", name, report.sum(name)))
   end
   for k, v in pairs(extra or {}) do
      table.insert(fields, string.format("%s=%.3f", k, v))
   end
   io.write("BENCH " .. table.concat(fields, " ") .. "\n")
end

return report
