-- Every alert and delivery state transition, atomic in Redis.
--
-- KEYS[1] is the alert prefix `{a:<id>}`; every key a delivery op touches
-- derives from it, so one call stays inside one Cluster slot (reopen and the
-- alert ops near the end also write the indexes of all alerts, named in KEYS[2..]).
-- ARGV[1] names the operation.
--
-- Delivery hash fields:
--   s  state        planned | in_progress | confirmed | unreachable | cancelled | expired | opted_out
--   k  step index   (0-based into the plan)      n  attempt within the step
--   p  plan JSON    [{"l": [[channel, contact], ...], "t": timeout_s}, ...]
--   q  sequence number in the alert (orders paged listings)
--   v  level needed: 3 posted, 4 delivered, 5 acknowledged
--   c  "k.n" of the attempt claimed for sending; w: claim time, or its last renewal (ms)
--   b  best status rank reached by the current attempt
--   f  failed legs of the current attempt, one char per leg ("0"/"1")
--   d  deadline of the current step (ms)         m  max attempts per step
--   y  confirming channel and level ("sms:delivered")
--   e  time of the terminal state (ms)
--   h  history, a line per event: at_ms|step|attempt|leg|status|provider|ref|code
--      (an operator's reopen writes `reopened` with the operator in the provider column)
-- A bitmap per state (`:bits:<state>`) marks sequence numbers; `:seq:<n>`
-- hashes map them back to residents, 128 to a block (gateway/deliveries.py).
-- Attempt status ranks: queued 1, sent 2, posted 3, delivered 4, acknowledged 5.

local A = KEYS[1]
local op = ARGV[1]

-- Deadlines are set and judged by Redis's clock, never the caller's: a worker
-- or pump whose clock is off must not fire a timer early (or late).
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local RANK = {queued = 1, sent = 2, posted = 3, delivered = 4, acknowledged = 5}
local TERMINAL = {confirmed = true, unreachable = true, cancelled = true, expired = true, opted_out = true}

local function dkey(rid) return A .. ':d:' .. rid end

local function line(now, k, n, leg, status, provider, ref, code)
  return table.concat({now, k, n, leg, status, provider or '', ref or '', code or ''}, '|')
end

-- Appends one or more lines (joined by newlines) to the delivery's history.
local function append(rid, lines)
  local h = redis.call('HGET', dkey(rid), 'h')
  redis.call('HSET', dkey(rid), 'h', h and (h .. '\n' .. lines) or lines)
end

local function history(rid, now, k, n, leg, status, provider, ref, code)
  append(rid, line(now, k, n, leg, status, provider, ref, code))
end

-- The alert's counters (`:count`) move many times in one batch call: they
-- are added up here and written once, as the call returns (counted).
local tally = {}
local function count(field, by)
  tally[field] = (tally[field] or 0) + (by or 1)
end

local function counted(reply)
  for field, by in pairs(tally) do redis.call('HINCRBY', A .. ':count', field, by) end
  tally = {}
  return reply
end

-- Whether the agency asked to hear of every terminal state; read once a call.
local callbacks
local function wants_events()
  if callbacks == nil then callbacks = redis.call('HEXISTS', A, 'cb') == 1 end
  return callbacks
end

local function move(rid, seq, old, new)
  if old == new then return end
  if old then
    redis.call('SETBIT', A .. ':bits:' .. old, seq, 0)
    count(old, -1)
  end
  redis.call('SETBIT', A .. ':bits:' .. new, seq, 1)
  count(new)
  -- gateway/callbacks.py sends these on.
  if TERMINAL[new] and wants_events() then
    redis.call('XADD', A .. ':events', '*', 'r', rid, 's', new)
  end
end

local function clear_timers(rid, k, n)
  redis.call('ZREM', A .. ':timers', rid .. '|' .. k .. '|t', rid .. '|' .. k .. '|r|' .. n, rid .. '|' .. k .. '|c|' .. n)
end

local function finish(rid, d, state, now)
  local k, n = d.k, d.n
  move(rid, d.q, d.s, state)
  redis.call('HSET', dkey(rid), 's', state, 'e', now)
  clear_timers(rid, k, n)
  return state
end

local FIELDS = {'s', 'k', 'n', 'p', 'q', 'v', 'c', 'w', 'b', 'f', 'd', 'm', 'H'}
local FIELDS_H = {'s', 'k', 'n', 'p', 'q', 'v', 'c', 'w', 'b', 'f', 'd', 'm', 'H', 'h'}
-- With `with_history`, d.h is the history too (false when there is none).
local function load(rid, with_history)
  local f = redis.call('HMGET', dkey(rid), unpack(with_history and FIELDS_H or FIELDS))
  if not f[1] then return nil end
  return {s = f[1], k = tonumber(f[2]), n = tonumber(f[3]), p = f[4], q = tonumber(f[5]), v = tonumber(f[6]),
          c = f[7], w = tonumber(f[8] or '0'), b = tonumber(f[9] or '0'), f = f[10] or '', d = tonumber(f[11] or '0'),
          m = tonumber(f[12] or '1'), H = tonumber(f[13] or '0'), h = f[14]}
end

local function plan_of(d) return cjson.decode(d.p) end

-- Move to the next step, or end unreachable when the plan is used up.
-- Moving on also returns the decoded plan, and `d` is left as the delivery
-- now stands, so a claim in the same call need not read either again.
local function advance(rid, d, now)
  local plan = plan_of(d)
  clear_timers(rid, d.k, d.n)
  if d.k + 1 >= #plan then
    return finish(rid, d, 'unreachable', now)
  end
  local k = d.k + 1
  local flags = string.rep('0', #plan[k + 1].l)
  redis.call('HSET', dkey(rid), 'k', k, 'n', 0, 'b', 0, 'f', flags, 'd', 0)
  redis.call('HDEL', dkey(rid), 'c', 'w', 'H')
  count('fallbacks')
  d.k, d.n, d.b, d.f, d.d, d.c, d.w, d.H = k, 0, 0, flags, 0, nil, 0, 0
  return 'next:' .. k, plan
end

-- Stop if the alert itself was cancelled or has expired.  A delivery op
-- never changes the alert, so one read serves the whole call.
local alert_now
local function alert_gate(rid, d, now)
  alert_now = alert_now or redis.call('HMGET', A, 'status', 'expires_ms')
  local a = alert_now
  if a[1] == 'cancelled' then return finish(rid, d, 'cancelled', now) end
  local ex = tonumber(a[2] or '0')
  if ex > 0 and now >= ex then return finish(rid, d, 'expired', now) end
  return nil
end

-- plan: ARGV = op, level, max_attempts, lease_ms, then (rid, seq, plan_json, initial_state) repeated.
-- With lease_ms > 0 a new delivery whose state is `planned` is claimed for its first send in the same
-- stroke (what op claim would do, without reading back what was just written).
-- Returns {created, {rid, ...}} of those claimed: their legs are the plan's first step, which the caller has.
if op == 'plan' then
  local now, lease = clock(), tonumber(ARGV[4])
  local created, claimed = 0, {}
  local last = tonumber(redis.call('HGET', A, 'last_seq') or '-1')
  if lease > 0 then
    local a = redis.call('HMGET', A, 'status', 'expires_ms')
    local ex = tonumber(a[2] or '0')
    -- The alert is over: plan only; op claim will close them (alert_gate).
    if a[1] == 'cancelled' or (ex > 0 and now >= ex) then lease = 0 end
  end
  for i = 5, #ARGV, 4 do
    local rid, seq, plan, state = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
    if redis.call('EXISTS', dkey(rid)) == 0 then
      local steps = plan ~= '[]' and cjson.decode(plan) or nil
      local legs = steps and #steps[1].l or 1
      local f = {'k', 0, 'n', 0, 'p', plan, 'q', seq, 'v', ARGV[2], 'm', ARGV[3], 'b', 0, 'f', string.rep('0', legs)}
      if state == 'planned' and lease > 0 then
        local deadline = now + steps[1].t * 1000
        state = 'in_progress'
        for _, v in ipairs({'c', '0.0', 'w', now, 'd', deadline,
                            'h', line(now, 0, 0, '*', 'claimed')}) do f[#f + 1] = v end
        redis.call('ZADD', A .. ':timers', deadline, rid .. '|0|t', now + lease, rid .. '|0|c|0')
        claimed[#claimed + 1] = rid
      end
      table.insert(f, 's')
      table.insert(f, state)
      if TERMINAL[state] then
        table.insert(f, 'e')
        table.insert(f, now)
      end
      redis.call('HSET', dkey(rid), unpack(f))
      redis.call('HSET', A .. ':seq:' .. math.floor(seq / 128), seq % 128, rid)
      if seq > last then last = seq end
      move(rid, seq, nil, state)
      count('targeted')
      created = created + 1
    end
  end
  redis.call('HSET', A, 'last_seq', last)
  return counted({created, claimed})
end

-- claim_loaded: claim step k, attempt n of a delivery already loaded (`d`)
-- and checked against the alert.  `plan` (decoded) may be nil; `earlier` is
-- a history line still to write before the claim's own, or nil.
local function claim_loaded(rid, d, plan, k, n, now, lease, earlier)
  local tag = k .. '.' .. n
  if d.c == tag then
    -- Claimed before: sent already, or the claimer may still be sending.
    if d.b > 0 or now - d.w < lease then
      if d.b == 0 then redis.call('ZADD', A .. ':timers', d.w + lease, rid .. '|' .. k .. '|c|' .. n) end
      if earlier then append(rid, earlier) end
      return {'skip'}
    end
  end
  local step = (plan or plan_of(d))[k + 1]
  local claimed = line(now, k, n, '*', 'claimed')
  local lines = earlier and (earlier .. '\n' .. claimed) or claimed
  -- d.h is the history when `d` was loaded with it (false: none yet).
  local h = d.h
  if h == nil then h = redis.call('HGET', dkey(rid), 'h') end
  local f = {'c', tag, 'w', now, 'h', h and (h .. '\n' .. lines) or lines}
  -- If this send never reports back (worker killed mid-call), look again after the lease.
  local lease_member = rid .. '|' .. k .. '|c|' .. n
  if d.d == 0 then
    d.d = now + step.t * 1000
    f[#f + 1], f[#f + 2] = 'd', d.d
    redis.call('ZADD', A .. ':timers', d.d, rid .. '|' .. k .. '|t', now + lease, lease_member)
  else
    redis.call('ZADD', A .. ':timers', now + lease, lease_member)
  end
  -- Claimed: the lease guards the send now, not the hand-off timer of a step moved on to.
  if n == 0 then redis.call('ZREM', A .. ':timers', rid .. '|' .. k .. '|r|0') end
  if d.s == 'planned' then
    move(rid, d.q, 'planned', 'in_progress')
    f[#f + 1], f[#f + 2] = 's', 'in_progress'
  end
  redis.call('HSET', dkey(rid), unpack(f))
  return {'ok', cjson.encode(step.l)}
end

-- claim: the one gate before a provider call.
local function claim(rid, k, n, now, lease)
  local d = load(rid, true)
  if not d or TERMINAL[d.s] or d.k ~= k or d.n ~= n then return {'skip'} end
  local gated = alert_gate(rid, d, now)
  if gated then return {gated} end
  return claim_loaded(rid, d, nil, k, n, now, lease, nil)
end

-- event: what a provider (or the resident) said about one leg of an attempt.
local function event(rid, k, n, leg, status, permanent, provider, ref, code, now, channel, backoff, lease, hold)
  local d = load(rid, true)
  if not d then return 'unknown' end
  -- A provider that says the same thing again (a retried or duplicated
  -- callback) is recorded, but counted once: the line bar its time is in the history.
  local said = line('', k, n, leg, status, provider, ref, code)
  local h = d.h
  local repeated = h and string.find(h .. '\n', said .. '\n', 1, true)
  redis.call('HSET', dkey(rid), 'h', h and (h .. '\n' .. now .. said) or (now .. said))
  if not repeated then count('a:' .. channel .. ':' .. status) end
  if TERMINAL[d.s] then return 'late' end
  local rank = RANK[status]
  -- The resident acted: that is proof whichever step it came from.
  if status == 'acknowledged' then
    redis.call('HSET', dkey(rid), 'y', channel .. ':acknowledged')
    count('by:' .. channel)
    return finish(rid, d, 'confirmed', now)
  end
  if d.k ~= k or d.n ~= n then return 'late' end
  -- The provider never answered the send: it may have gone, so the attempt is
  -- not failed (a retry could send it twice); the step's deadline moves it on.
  -- The send did come back, so the claim lease has nothing left to guard.
  if status == 'unanswered' then
    if d.b == 0 then redis.call('ZREM', A .. ':timers', rid .. '|' .. k .. '|c|' .. n) end
    return 'noop'
  end
  if rank then
    if rank <= d.b then return 'noop' end
    -- The provider has it: the claim lease has nothing left to guard.
    if d.b == 0 then redis.call('ZREM', A .. ':timers', rid .. '|' .. k .. '|c|' .. n) end
    redis.call('HSET', dkey(rid), 'b', rank)
    -- A letter handed to the post is as far as paper mail can prove.
    if rank >= d.v or status == 'posted' then
      redis.call('HSET', dkey(rid), 'y', channel .. ':' .. status)
      count('by:' .. channel)
      return finish(rid, d, 'confirmed', now)
    end
    -- Answered and still playing (a call): the step's end waits `hold` (field H)
    -- for the resident to hear it out and press, rather than end it mid-sentence.
    -- The deadline itself stays: the hold buys no retries.
    if hold > 0 and d.k == k then
      local held = clock() + hold
      if held > d.d then
        redis.call('HSET', dkey(rid), 'H', held)
        redis.call('ZADD', A .. ':timers', held, rid .. '|' .. k .. '|t')
      end
    end
    return 'noop'
  end
  if status ~= 'failed' then return 'noop' end
  -- The call is over: an answered call's hold ends with it, and the step's own deadline decides.
  if d.H > 0 then
    redis.call('HDEL', dkey(rid), 'H')
    redis.call('ZADD', A .. ':timers', d.d, rid .. '|' .. k .. '|t')
  end
  -- A failure after the provider proved delivery changes nothing.
  if d.b >= RANK.delivered then return 'noop' end
  local flags = d.f
  if string.sub(flags, leg + 1, leg + 1) == '1' then return 'noop' end
  flags = string.sub(flags, 1, leg) .. '1' .. string.sub(flags, leg + 2)
  redis.call('HSET', dkey(rid), 'f', flags)
  if string.find(flags, '0', 1, true) then return 'noop' end
  -- Every leg of this attempt failed.
  -- Retries are timed by Redis's clock; the provider's time stays in the history.
  local retry_at = clock() + backoff
  if not permanent and d.n + 1 < d.m and retry_at < d.d then
    local n2 = d.n + 1
    local legs = string.len(flags)
    redis.call('HSET', dkey(rid), 'n', n2, 'b', 0, 'f', string.rep('0', legs))
    redis.call('HDEL', dkey(rid), 'H')
    redis.call('ZREM', A .. ':timers', rid .. '|' .. k .. '|c|' .. d.n)
    redis.call('ZADD', A .. ':timers', retry_at, rid .. '|' .. k .. '|r|' .. n2)
    return 'retry'
  end
  local res = advance(rid, d, now)
  -- The caller sends the next step at once.  Should that hand-off be lost (its
  -- worker killed, its task never published), this timer sends it; a claim removes it.
  if d.k == k + 1 then redis.call('ZADD', A .. ':timers', clock() + lease, rid .. '|' .. d.k .. '|r|0') end
  return res
end

-- timer: a due member of `:timers`: rid|k|t (step deadline), rid|k|r|n (retry), rid|k|c|n (claim lease).
-- For a step to send it also returns the delivery as loaded, the plan if it
-- was decoded, and the `timed_out` history line for the claim to write.
local function timer(member, now)
  redis.call('ZREM', A .. ':timers', member)
  local rid, k, kind, n = string.match(member, '^(.-)|(%d+)|(%a)|?(%d*)$')
  k = tonumber(k)
  local d = load(rid, true)
  if not d or TERMINAL[d.s] or d.k ~= k then return 'noop' end
  local gated = alert_gate(rid, d, now)
  if gated then return gated end
  if kind == 't' then
    -- Not over yet (a call answered holds it, field H): due again then; this member was just removed.
    local ends = math.max(d.d, d.H)
    if now < ends then
      redis.call('ZADD', A .. ':timers', ends, member)
      return 'noop'
    end
    local timed_out = line(now, k, d.n, '*', 'timed_out')
    local res, plan = advance(rid, d, now)
    if plan then return res, d, plan, timed_out end
    append(rid, timed_out)
    return res
  end
  if tonumber(n) ~= d.n then return 'noop' end
  return 'send:' .. k .. ':' .. d.n, d
end

-- close: cancel, expire or opt out one delivery that is still open.
local function close(rid, state, now)
  local d = load(rid)
  if not d or TERMINAL[d.s] then return 'noop' end
  return finish(rid, d, state, now)
end

-- reopen: an unreachable delivery gets more steps, appended to its plan, and
-- goes back in progress on the first of them (retry in place: the alert's
-- figures stay one story).  The step is sent by the caller at once; the
-- retry timer at now + lease sends it should that hand-off be lost.
-- Anything but `unreachable` is left alone, so a second reopen sends nothing twice.
local function reopen(rid, steps, who, now, lease)
  local d = load(rid)
  if not d or d.s ~= 'unreachable' then return 'noop' end
  local plan = plan_of(d)
  local k = #plan
  for _, step in ipairs(cjson.decode(steps)) do plan[#plan + 1] = step end
  move(rid, d.q, 'unreachable', 'in_progress')
  redis.call('HSET', dkey(rid), 's', 'in_progress', 'p', cjson.encode(plan), 'k', k, 'n', 0, 'b', 0,
             'f', string.rep('0', #plan[k + 1].l), 'd', 0)
  redis.call('HDEL', dkey(rid), 'c', 'w', 'e')
  count('reopened')
  redis.call('ZADD', A .. ':timers', now + lease, rid .. '|' .. k .. '|r|0')
  history(rid, now, k, 0, '*', 'reopened', who)
  return 'reopened:' .. k
end

-- Alerts ---------------------------------------------------------------------
-- The alert hash is A itself (gateway/alerts.py).  Its status goes
-- planning -> active -> done | cancelled | expired, and a finished alert runs
-- again (done -> active) when an update adds residents or deliveries reopen.

local NEW = {[''] = true}  -- an alert not stored yet

-- The one writer of an alert's status: it moves only from a state `from`
-- names, so a cancel that came in between wins.  Further field/value pairs
-- are written with it.  Returns whether it moved, and the status it found.
local function alert_status(to, from, ...)
  local status = redis.call('HGET', A, 'status') or ''
  if not from[status] then return false, status end
  redis.call('HSET', A, 'status', to, ...)
  return true, status
end

-- A finished alert runs again (done -> active): the pump watches it once
-- more, and an agency with callbacks will hear a new final summary.
-- KEYS[2], KEYS[3]: ACTIVE_ALERTS, CALLBACK_ALERTS.
local function resume(aid)
  if not alert_status('active', {done = true}) then return end
  redis.call('SADD', KEYS[2], aid)
  if redis.call('HEXISTS', A, 'cb') == 1 then
    redis.call('HDEL', A, 'cb_final')
    redis.call('SADD', KEYS[3], aid)
  end
end

-- The ops below take many deliveries of this alert per call and return a reply for each, in order.

-- claim: ARGV = op, lease_ms, then (rid, k, n) repeated.
if op == 'claim' then
  local now, lease, out = clock(), tonumber(ARGV[2]), {}
  for i = 3, #ARGV, 3 do
    out[#out + 1] = claim(ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), now, lease)
  end
  return counted(out)
end

-- renew: ARGV = op, lease_ms, then (rid, k, n) repeated.  A send still on its
-- way (waiting for the provider's pace, or for its answer) keeps its claim: the
-- lease runs from now, so no other worker takes the step over as abandoned.
-- 1 if renewed; 0 if the claim is not this attempt's any more, or the provider has it.
if op == 'renew' then
  local now, lease, out = clock(), tonumber(ARGV[2]), {}
  for i = 3, #ARGV, 3 do
    local rid, k, n = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    local d = load(rid)
    local mine = d and not TERMINAL[d.s] and d.k == k and d.n == n and d.c == k .. '.' .. n and d.b == 0
    if mine then
      redis.call('HSET', dkey(rid), 'w', now)
      redis.call('ZADD', A .. ':timers', now + lease, rid .. '|' .. k .. '|c|' .. n)
    end
    out[#out + 1] = mine and 1 or 0
  end
  return out
end

-- event: ARGV = op, lease_ms, then (rid, k, n, leg, status, permanent 0/1, provider, ref, code, now, channel,
-- backoff_ms, hold_ms) repeated.
if op == 'event' then
  local lease, out = tonumber(ARGV[2]), {}
  for i = 3, #ARGV, 13 do
    out[#out + 1] = event(ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), ARGV[i + 4],
                          ARGV[i + 5] == '1', ARGV[i + 6], ARGV[i + 7], ARGV[i + 8], tonumber(ARGV[i + 9]),
                          ARGV[i + 10], tonumber(ARGV[i + 11]), lease, tonumber(ARGV[i + 12]))
  end
  return counted(out)
end

-- timer: ARGV = op, lease_ms, then members.  A step the timer says to send
-- (next:k, send:k:n) is claimed at once: {'ok', legs_json, k, n}.
if op == 'timer' then
  local now, lease, out = clock(), tonumber(ARGV[2]), {}
  for i = 3, #ARGV do
    local res, d, plan, earlier = timer(ARGV[i], now)
    local k, n = string.match(res, '^next:(%d+)$'), '0'
    if not k then k, n = string.match(res, '^send:(%d+):(%d+)$') end
    if k then
      local c = claim_loaded(string.match(ARGV[i], '^(.-)|'), d, plan, tonumber(k), tonumber(n), now, lease, earlier)
      res = c[1] == 'ok' and {'ok', c[2], tonumber(k), tonumber(n)} or c[1]
    end
    out[#out + 1] = res
  end
  return counted(out)
end

-- reopen: KEYS = alert, ACTIVE_ALERTS, CALLBACK_ALERTS.  ARGV = op, lease_ms, operator,
-- alert id, then (rid, steps_json) repeated.  An alert cancelled or expired
-- reopens nothing ('closed'); a finished one (done) runs again.
if op == 'reopen' then
  local now, lease, who, out = clock(), tonumber(ARGV[2]), ARGV[3], {}
  local a = redis.call('HMGET', A, 'status', 'expires_ms')
  local ex = tonumber(a[2] or '0')
  local closed = a[1] == 'cancelled' or a[1] == 'expired' or (ex > 0 and now >= ex)
  local any = false
  for i = 5, #ARGV, 2 do
    out[#out + 1] = closed and 'closed' or reopen(ARGV[i], ARGV[i + 1], who, now, lease)
    any = any or string.sub(out[#out], 1, 9) == 'reopened:'
  end
  if any then resume(ARGV[4]) end
  return counted(out)
end

-- close: ARGV = op, state, then resident ids.
if op == 'close' then
  local now, state, out = clock(), ARGV[2], {}
  for i = 3, #ARGV do out[#out + 1] = close(ARGV[i], state, now) end
  return counted(out)
end

-- The alert ops, one call each.  They come last: a delivery op returns
-- before Redis runs a line of them.

-- The agency's CAP index (KEYS[2], or '' for a JSON alert): a CAP message
-- (sender, identifier) -> the 'aid|digest' it became.
local function cap_prior(field)
  return KEYS[2] ~= '' and redis.call('HGET', KEYS[2], field)
end

local function cap_remember(field, value)
  if KEYS[2] ~= '' then redis.call('HSET', KEYS[2], field, value) end
end

-- What an update or a cancel checks first: the same CAP message seen before
-- ({'prior', 'aid|digest'}), or no such alert ({'missing', ''}); else nil
-- and the alert's status.
local function amend_check(field)
  local prior = cap_prior(field)
  if prior then return {'prior', prior} end
  local status = redis.call('HGET', A, 'status')
  if not status then return {'missing', ''} end
  return nil, status
end

-- alert_create: stores the alert unless this agency already used the
-- idempotency key or posted this CAP message: then returns that alert's
-- 'aid|digest' for comparison, else ''.
-- KEYS: alert, CAP index or '', idempotency key or '', ALERTS, agency alerts, ACTIVE_ALERTS, CALLBACK_ALERTS.
-- ARGV: op, aid, digest, doc, agency, created ms, expires ms, idempotency ttl, CAP field, CAP JSON or '',
-- callbacks 0/1, drill (CAP status Test or Exercise, or '': read by /metrics without the document).
if op == 'alert_create' then
  local prior = (KEYS[3] ~= '' and redis.call('GET', KEYS[3])) or cap_prior(ARGV[9])
  if prior then return prior end
  local mine = ARGV[2] .. '|' .. ARGV[3]
  if KEYS[3] ~= '' then redis.call('SET', KEYS[3], mine, 'EX', ARGV[8]) end
  cap_remember(ARGV[9], mine)
  alert_status('planning', NEW, 'doc', ARGV[4], 'agency', ARGV[5], 'created_ms', ARGV[6], 'expires_ms', ARGV[7],
               'version', 1)
  if ARGV[10] ~= '' then redis.call('HSET', A, 'cap', ARGV[10]) end
  if ARGV[12] ~= '' then redis.call('HSET', A, 'drill', ARGV[12]) end
  if ARGV[11] == '1' then
    redis.call('HSET', A, 'cb', 1)
    redis.call('SADD', KEYS[7], ARGV[2])
  end
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[2])
  redis.call('ZADD', KEYS[5], ARGV[6], ARGV[2])
  redis.call('SADD', KEYS[6], ARGV[2])
  return ''
end

-- New content (and area and expiry), with any further field/value pairs; returns the new version.
local function new_content(doc, expires_ms, ...)
  redis.call('HSET', A, 'doc', doc, 'expires_ms', expires_ms, ...)
  return redis.call('HINCRBY', A, 'version', 1)
end

-- alert_update: new content, area and expiry; the version goes up.
-- KEYS: alert, CAP index or ''.  ARGV: op, doc, expires ms, now, CAP JSON or '', CAP field, 'aid|digest'.
if op == 'alert_update' then
  local found, status = amend_check(ARGV[6])
  if found then return found end
  if status == 'cancelled' or status == 'expired' then return {'closed', status} end
  cap_remember(ARGV[6], ARGV[7])
  if ARGV[5] ~= '' then redis.call('HSET', A, 'cap', ARGV[5]) end
  return {'ok', tostring(new_content(ARGV[2], ARGV[3], 'updated_ms', ARGV[4]))}
end

-- round_update: an update round still running takes its alert's new content,
-- so its pending steps send it; a round that ended keeps what it sent (0).
-- ARGV: op, doc, expires ms.
if op == 'round_update' then
  local status = redis.call('HGET', A, 'status')
  if status ~= 'planning' and status ~= 'active' then return 0 end
  new_content(ARGV[2], ARGV[3])
  return 1
end

-- alert_cancel: KEYS: alert, CAP index or ''.  ARGV: op, now, CAP field, 'aid|digest', CAP JSON of the Cancel or ''.
if op == 'alert_cancel' then
  local found, status = amend_check(ARGV[3])
  if found then return found end
  cap_remember(ARGV[3], ARGV[4])
  if ARGV[5] ~= '' then redis.call('HSET', A, 'cap_cancel', ARGV[5]) end
  -- A finished alert is cancelled too (nothing left to stop): no update may revive it.
  if alert_status('cancelled', {planning = true, active = true, done = true}, 'cancelled_ms', ARGV[2]) then
    return {'cancelled', status}
  end
  return {'unchanged', status}
end

-- alert_activate: to active from one of the states named.  ARGV: op, targeted or '', states...
if op == 'alert_activate' then
  local from = {}
  for i = 3, #ARGV do from[ARGV[i]] = true end
  local targeted = ARGV[2] ~= '' and {'targeted', ARGV[2]} or {}
  return alert_status('active', from, unpack(targeted)) and 1 or 0
end

-- alert_grow: an update added residents: `targeted` counts them, and a
-- finished alert runs again.  KEYS: alert, ACTIVE_ALERTS, CALLBACK_ALERTS.  ARGV: op, alert id, targeted.
if op == 'alert_grow' then
  if redis.call('EXISTS', A) == 0 then return 0 end
  redis.call('HSET', A, 'targeted', ARGV[3])
  resume(ARGV[2])
  return 1
end

-- alert_round: an update round, created once.  KEYS: round, the alert's rounds, ACTIVE_ALERTS, CALLBACK_ALERTS.
-- ARGV: op, round id, doc, agency, parent, now, expires ms, callbacks 0/1, residents.
if op == 'alert_round' then
  if redis.call('EXISTS', A) == 1 then return 0 end
  alert_status('active', NEW, 'doc', ARGV[3], 'agency', ARGV[4], 'parent', ARGV[5], 'created_ms', ARGV[6],
               'expires_ms', ARGV[7], 'version', 1, 'targeted', ARGV[9], 'fanned', 1)
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('SADD', KEYS[3], ARGV[2])
  if ARGV[8] == '1' then
    redis.call('HSET', A, 'cb', 1)
    redis.call('SADD', KEYS[4], ARGV[2])
  end
  return 1
end

-- summary: the alert's summary (JSON, ARGV[3]) queued for the agency behind
-- its delivery events, marked so that it is queued once.  'progress' while
-- the alert runs (`cb_progress_ms` = ARGV[4], now); 'final' once it has ended
-- and the pump no longer watches it (KEYS[2]: ACTIVE_ALERTS), and only once
-- until it runs again (`resume` clears `cb_final`).  ARGV: op, kind, summary, now, alert id.
if op == 'summary' then
  local status, final = unpack(redis.call('HMGET', A, 'status', 'cb_final'))
  if ARGV[2] == 'final' then
    local ended = status == 'done' or status == 'cancelled' or status == 'expired'
    if final or not ended or redis.call('SISMEMBER', KEYS[2], ARGV[5]) == 1 then return 0 end
    redis.call('HSET', A, 'cb_final', 1)
  else
    if status ~= 'active' then return 0 end
    redis.call('HSET', A, 'cb_progress_ms', ARGV[4])
  end
  redis.call('XADD', A .. ':events', '*', 't', ARGV[2], 'j', ARGV[3])
  return 1
end

-- alert_end: a running alert ends (done, expired) unless it ended meanwhile:
-- a cancel that lands between the pump's read and this write keeps its label.
-- ARGV: op, status, now.
if op == 'alert_end' then
  return alert_status(ARGV[2], {planning = true, active = true}, 'ended_ms', ARGV[3]) and 1 or 0
end

return redis.error_reply('unknown op ' .. tostring(op))
