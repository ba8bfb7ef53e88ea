-- Leases in Redis: a key one process holds for a while, and timers handed
-- out for a while (gateway/pump.py, channels/mail.py).
--
-- ARGV[1] names the operation.

local op = ARGV[1]

-- lead: KEYS = the lease.  ARGV = op, holder, ms.  Take the lease or keep it;
-- only the holder renews.  Returns 1 if held.
if op == 'lead' then
  local holder = redis.call('GET', KEYS[1])
  if holder == false or holder == ARGV[2] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    return 1
  end
  return 0
end

-- release: KEYS = the lease.  ARGV = op, holder.  Only the holder lets go.
if op == 'release' then
  if redis.call('GET', KEYS[1]) == ARGV[2] then return redis.call('DEL', KEYS[1]) end
  return 0
end

-- due: KEYS = an alert's timers.  ARGV = op, now, limit, lease ms.  The due
-- members, each pushed a lease ahead (so one whose batch is lost comes due
-- again; the transition removes it), and when the next one comes due.
if op == 'due' then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
  for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2] + ARGV[4], m) end
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {due, first[2] or false}
end

return redis.error_reply('unknown op ' .. tostring(op))
