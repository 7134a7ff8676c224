"""The Lua scripts that keep per-destination flood-control state in Redis (see redis_backend).

Every script runs atomically in Redis and takes time from Redis (``TIME``), so replicas whose
clocks disagree still agree on leases, pauses, cool-offs and token refills. Keys of one
destination ``K`` (the hash tag keeps them in one Redis Cluster slot):

  {P}{K}:state  HASH  circuit, failures, open_until, open_seq, probe, paused_until,
                      tokens, tokens_ts, seq
  {P}{K}:slots  ZSET  slot id -> lease expiry (ms); in flight = its size after purging
  {P}{K}:queue  ZSET  ticket id -> sequence number (HINCRBY seq): the FIFO across replicas
  {P}{K}:live   ZSET  ticket id -> ticket lease expiry (ms); a dead waiter leaves the queue

All four expire together (PEXPIRE ``ttl`` on every write), so idle destinations cost nothing.
Times are milliseconds; ``rate`` is tokens per millisecond (0: no rate limit).
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "FINISH", "INSPECT", "POLL", "REFRESH"]

# ARGV[1..11]: the destination's limits (the config of the latest acquire), then per script.
_PRELUDE = """
local state, slots, queue, live = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local concurrency = tonumber(ARGV[1])
local queue_max = tonumber(ARGV[2])
local queue_timeout = tonumber(ARGV[3])
local rate = tonumber(ARGV[4])
local capacity = tonumber(ARGV[5])
local retry_max = tonumber(ARGV[6])
local failures_max = tonumber(ARGV[7])
local cooloff = tonumber(ARGV[8])
local slot_lease = tonumber(ARGV[9])
local ticket_lease = tonumber(ARGV[10])
local ttl = tonumber(ARGV[11])
local EPS = 1e-6
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local events = {}

local function num(value, default)
  local n = tonumber(value)
  if n == nil then return default end
  return n
end

local function zrem_all(key, members)
  for i = 1, #members, 500 do
    redis.call('ZREM', key, unpack(members, i, math.min(i + 499, #members)))
  end
end

-- Expired slot leases and waiters whose replica stopped polling are gone.
local function purge()
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
  local dead = redis.call('ZRANGEBYSCORE', live, '-inf', now)
  if #dead > 0 then
    zrem_all(live, dead)
    zrem_all(queue, dead)
  end
end

local h = redis.call('HMGET', state, 'circuit', 'failures', 'open_until', 'probe',
  'paused_until', 'tokens', 'tokens_ts', 'open_seq')
local circuit = h[1] or 'closed'
local failures = num(h[2], 0)
local open_until = num(h[3], 0)
local probe = h[4] or ''
local paused_until = num(h[5], 0)
local tokens = num(h[6], capacity)
local tokens_ts = num(h[7], now)
local open_seq = num(h[8], 0)

if rate > 0 then
  if now > tokens_ts then
    tokens = math.min(capacity, tokens + (now - tokens_ts) * rate)
    tokens_ts = now
  end
  if tokens > capacity then tokens = capacity end  -- a reload lowered the burst
end

local function token_wait(count)
  if rate <= 0 then return 0 end
  local missing = count - tokens
  if missing <= EPS then return 0 end
  return missing / rate
end

local function take()
  if rate <= 0 then return true end
  if tokens >= 1 - EPS then
    tokens = math.max(0, tokens - 1)
    return true
  end
  return false
end

local function alive(id)
  if id == '' then return false end
  return redis.call('ZSCORE', slots, id) ~= false or redis.call('ZSCORE', live, id) ~= false
end

local function close_circuit(why)
  local was = circuit
  circuit = 'closed'
  failures = 0
  probe = ''
  events[#events + 1] = {'circuit_closed', {from = was, why = why}}
end

local function open_circuit()
  local was = circuit
  circuit = 'open'
  open_until = now + cooloff
  probe = ''
  -- Everyone queued now is refused circuit-open at their replica's next poll.
  open_seq = num(redis.call('HGET', state, 'seq'), 0)
  events[#events + 1] = {'circuit_opened',
    {from = was, failures = failures, cooloff_s = cooloff / 1000}}
end

local function reply(result)
  local fields = {'circuit', circuit, 'failures', failures, 'open_until', open_until,
    'probe', probe, 'paused_until', paused_until, 'open_seq', open_seq}
  if rate > 0 then
    fields[#fields + 1] = 'tokens'
    fields[#fields + 1] = tokens
    fields[#fields + 1] = 'tokens_ts'
    fields[#fields + 1] = tokens_ts
  end
  redis.call('HSET', state, unpack(fields))
  for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ttl) end
  result.events = events
  result.circuit = circuit  -- as operators read it: open with the cool-off over is half-open
  if circuit == 'open' and now >= open_until then result.circuit = 'half-open' end
  result.failures = failures
  return cjson.encode(result)
end

local function reject(reason, retry_ms, why)
  return reply({r = 'reject', reason = reason, retry_ms = retry_ms, why = why})
end
"""

# ARGV[12]: the id the slot (or the ticket, if it must wait) will have.
ACQUIRE = (
    _PRELUDE
    + """
purge()
local id = ARGV[12]
if failures_max == 0 and circuit ~= 'closed' then close_circuit('disabled') end
if circuit == 'open' then
  local left = open_until - now
  if left > 0 then return reject('circuit-open', left, 'open') end
  circuit = 'half-open'
  probe = ''
  events[#events + 1] = {'circuit_half_open', {cooloff_s = cooloff / 1000}}
end
local is_probe = false
if circuit == 'half-open' then
  if alive(probe) then return reject('circuit-open', 1000, 'probing') end
  is_probe = true
end
local pause_left = paused_until - now
if pause_left > queue_timeout then return reject('queue-timeout', pause_left, 'paused') end
local queued = redis.call('ZCARD', queue)
local wait = token_wait(queued + 1)
if wait > queue_timeout then return reject('rate-limited', wait, 'rate') end
local in_flight = redis.call('ZCARD', slots)
if queued == 0 and pause_left <= 0 and in_flight < concurrency and take() then
  redis.call('ZADD', slots, now + slot_lease, id)
  if is_probe then probe = id end
  return reply({r = 'admit', in_flight = in_flight + 1, queued = 0})
end
if queued >= queue_max then
  if queue_max == 0 and pause_left <= 0 and in_flight < concurrency then
    return reject('rate-limited', wait, 'rate')
  end
  local busy = queue_timeout
  if pause_left > 0 then busy = pause_left end
  return reject('queue-full', busy, 'full')
end
local seq = redis.call('HINCRBY', state, 'seq', 1)
redis.call('ZADD', queue, seq, id)
redis.call('ZADD', live, now + ticket_lease, id)
if is_probe then probe = id end
return reply({r = 'queued', in_flight = in_flight, queued = queued + 1})
"""
)

# ARGV[12]: n, then n triples (ticket id, ms left until its deadline, cancelled 0/1), in the
# replica's FIFO order. Verdicts: a admitted, w waiting, c cancelled (gone, slot returned),
# g lost (its lease expired), o circuit opened, p paused past its deadline, t timed out.
POLL = (
    _PRELUDE
    + """
purge()
if failures_max == 0 and circuit ~= 'closed' then close_circuit('disabled') end
local pause_left = paused_until - now
local n = tonumber(ARGV[12])
local out = {}
local head = nil
local function leave(id)
  redis.call('ZREM', queue, id)
  redis.call('ZREM', live, id)
  if probe == id then probe = '' end
end
for i = 1, n do
  local base = 12 + (i - 1) * 3
  local id, left, cancelled = ARGV[base + 1], tonumber(ARGV[base + 2]), ARGV[base + 3] == '1'
  local seq = redis.call('ZSCORE', queue, id)
  local verdict
  if not seq then
    if redis.call('ZSCORE', slots, id) then  -- admitted by a poll whose reply was lost
      verdict = 'a'
      if cancelled then
        redis.call('ZREM', slots, id)
        if probe == id then probe = '' end
        verdict = 'c'
      end
    else
      verdict = 'g'
    end
  elseif cancelled then
    leave(id)
    verdict = 'c'
  elseif tonumber(seq) <= open_seq or circuit == 'open' then
    leave(id)
    verdict = 'o'
  elseif pause_left > 0 and pause_left > left then
    leave(id)
    verdict = 'p'
  else
    -- FIFO: admitted only if every live ticket ahead of it can be admitted too.
    local rank = redis.call('ZRANK', queue, id)
    local free = concurrency - redis.call('ZCARD', slots)
    if pause_left <= 0 and rank < free and (rate <= 0 or tokens + EPS >= rank + 1) then
      take()
      redis.call('ZREM', queue, id)
      redis.call('ZREM', live, id)
      redis.call('ZADD', slots, now + slot_lease, id)
      verdict = 'a'
    elseif left <= 0 then
      leave(id)
      verdict = 't'
    else
      redis.call('ZADD', live, now + ticket_lease, id)
      verdict = 'w'
      if head == nil or rank < head then head = rank end
    end
  end
  out[i] = verdict
end
local token_ms = 0
if head ~= nil then token_ms = token_wait(head + 1) end
return reply({r = out, pause_ms = math.max(0, pause_left), token_ms = token_ms,
  open_ms = math.max(0, open_until - now), in_flight = redis.call('ZCARD', slots),
  queued = redis.call('ZCARD', queue)})
"""
)

# ARGV[12]: outcome (success | failure | neutral | '' for none), [13] status (0: none),
# [14] the receiver's Retry-After in ms (-1: none), [15] slot id to release ('' for none).
FINISH = (
    _PRELUDE
    + """
local outcome, status = ARGV[12], tonumber(ARGV[13])
local asked, release = tonumber(ARGV[14]), ARGV[15]
if (status == 429 or status == 503) and asked > 0 then
  local pause = math.min(asked, retry_max)
  if now + pause > paused_until then
    paused_until = now + pause
    events[#events + 1] = {'destination_paused',
      {pause_s = pause / 1000, status = status, retry_after_s = asked / 1000}}
  end
end
if outcome ~= '' then
  if failures_max == 0 then
    failures = 0
    if circuit ~= 'closed' then close_circuit('disabled') end
  elseif outcome == 'neutral' or circuit == 'open' then
    -- late replies to requests sent before it opened: the cool-off stands
  elseif outcome == 'success' then
    failures = 0
    if circuit == 'half-open' then close_circuit('probe-succeeded') end
  else
    failures = failures + 1
    if circuit == 'half-open' or failures >= failures_max then open_circuit() end
  end
end
if release ~= '' then
  redis.call('ZREM', slots, release)
  redis.call('ZREM', queue, release)  -- a ticket whose request went away mid-call
  redis.call('ZREM', live, release)
  if probe == release and circuit == 'half-open' then probe = '' end  -- no verdict
end
return reply({r = 'ok', in_flight = redis.call('ZCARD', slots)})
"""
)

# Lease renewal for the slots one replica holds at one destination.
# ARGV[1]: slot lease (ms), [2] ttl (ms), [3..] slot ids. Returns the ids no longer held.
REFRESH = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local lost = {}
for i = 3, #ARGV do
  if redis.call('ZSCORE', KEYS[2], ARGV[i]) then
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, tonumber(ARGV[2])) end
return lost
"""

# The shared view of one destination, for operators (no writes).
INSPECT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local h = redis.call('HMGET', KEYS[1], 'circuit', 'failures', 'open_until', 'paused_until')
return cjson.encode({
  in_flight = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf'),
  queued = redis.call('ZCOUNT', KEYS[4], '(' .. now, '+inf'),
  circuit = h[1] or 'closed',
  failures = tonumber(h[2]) or 0,
  open_ms = math.max(0, (tonumber(h[3]) or 0) - now),
  paused_ms = math.max(0, (tonumber(h[4]) or 0) - now),
})
"""
