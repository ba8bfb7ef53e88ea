-- Changes to a resident's hash that must not revive an erased resident
-- (gateway/registry.py, gateway/contact_ages.py).
--
-- KEYS[1] is the resident hash `r:<id>`; ARGV[1] names the operation.

local R = KEYS[1]
local op = ARGV[1]

-- dead_contact: ARGV = op, contact index.  Appends the index to field x once,
-- and only while the resident exists.  Returns 1 if it was added.
if op == 'dead_contact' then
  if redis.call('EXISTS', R) == 0 then return 0 end
  local x = redis.call('HGET', R, 'x') or ''
  for i in string.gmatch(x, '[^,]+') do if i == ARGV[2] then return 0 end end
  if x == '' then x = ARGV[2] else x = x .. ',' .. ARGV[2] end
  redis.call('HSET', R, 'x', x)
  return 1
end

-- reseal: ARGV = op, sealed contact data as read, the same sealed again.
-- The swap lands only on the value that was read.
if op == 'reseal' then
  if redis.call('HGET', R, 'c') ~= ARGV[2] then return 0 end
  redis.call('HSET', R, 'c', ARGV[3])
  return 1
end

-- remember: ARGV = op, field, value.  Written only while the resident has a profile.
if op == 'remember' then
  if redis.call('HEXISTS', R, 'p') == 0 then return 0 end
  return redis.call('HSET', R, ARGV[2], ARGV[3])
end

-- consent: ARGV = op, 'true' or 'false': consent to non-emergency alerts (profile field ne).
if op == 'consent' then
  local p = redis.call('HGET', R, 'p')
  if not p then return 0 end
  local profile = cjson.decode(p)
  profile.ne = ARGV[2] == 'true'
  redis.call('HSET', R, 'p', cjson.encode(profile))
  return 1
end

-- contact_confirmed: ARGV = op, contact index, ms.  Sets that point's time in
-- `lc`, only while the resident exists and has that many points.
if op == 'contact_confirmed' then
  local raw = redis.call('HGET', R, 'lc')
  if not raw then return 0 end
  local lc = cjson.decode(raw)
  local i = tonumber(ARGV[2]) + 1
  if not lc[i] then return 0 end
  lc[i][2] = tonumber(ARGV[3])
  redis.call('HSET', R, 'lc', cjson.encode(lc))
  return 1
end

return redis.error_reply('unknown op ' .. tostring(op))
