-- Reserves send slots in a provider's pace buckets (channels/pacing.py).
--
-- KEYS: the buckets of one kind of send.  ARGV: count, then per bucket its
-- interval and tolerance (ms).  Each key holds the bucket's theoretical
-- arrival time (GCRA).  Returns, per send, how many ms from now it may go.
--
-- Now is Redis's clock, never the caller's: a worker whose clock is 30 s
-- behind would otherwise find every slot 30 s ahead and sleep past its claim
-- lease while another worker sent the same step again.

local t = redis.call('TIME')
local now, count = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000, tonumber(ARGV[1])
local tat, interval, tolerance = {}, {}, {}
for i, key in ipairs(KEYS) do
  tat[i] = math.max(tonumber(redis.call('GET', key) or '0'), now)
  interval[i] = tonumber(ARGV[2 * i])
  tolerance[i] = tonumber(ARGV[1 + 2 * i])
end
local out = {}
for j = 1, count do
  local at = now
  for i = 1, #KEYS do at = math.max(at, tat[i] - tolerance[i]) end
  for i = 1, #KEYS do tat[i] = math.max(tat[i], at) + interval[i] end
  out[j] = math.ceil(at - now)
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.3f', tat[i]), 'PX', math.ceil(tat[i] - now + tolerance[i]) + 1000)
end
return out
