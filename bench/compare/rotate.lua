-- wrk script: each request asks for the next of PREFIX1.json .. PREFIXN.json,
-- round-robin, so wrk spreads its load over the same N documents rest2mqtt polls.
-- wrk ... URL -- N PREFIX      (PREFIX default /n/)
local n, prefix, i = 100, "/n/", 0

function init(args)
  n = tonumber(args[1]) or n
  prefix = args[2] or prefix
end

function request()
  i = i % n + 1
  return wrk.format("GET", prefix .. i .. ".json")
end
