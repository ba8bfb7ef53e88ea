-- Publishes a channel's traffic split between providers (channels/routing.py)
-- unless another process already moved it.
--
-- KEYS: the split, the list of switches.  ARGV: the state this process read,
-- the new state, shares JSON, switch JSON, now, switches kept.

local current = redis.call('HGET', KEYS[1], 'state') or ''
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'shares', ARGV[3], 'at_ms', ARGV[5])
redis.call('LPUSH', KEYS[2], ARGV[4])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
return 1
