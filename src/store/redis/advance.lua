-- verify_and_advance: SessionRecord::advance (src/sequence.rs), applied
-- atomically to one session hash in one round trip.
--
-- KEYS[1]  the session hash
-- ARGV[1]  presented counter       ARGV[2]  now (ms since the epoch)
-- ARGV[3]  grace depth K           ARGV[4]  grace window T (ms)
-- ARGV[5]  rotate: a(lways) n(ever) e(very n) i(min interval)
-- ARGV[6]  the rotate parameter    ARGV[7]  expiry slack (ms)
--
-- Reply: false if there is no such session, else
-- { verdict, ctr, req, seen, rot, ret, rev, uid, created, meta }.
--
-- Numbers are Lua doubles: exact for counters and ms timestamps below
-- 2^53 (see docs/redis.md). Values that only move are written back as the
-- decimal strings they came in as, so they stay exact whatever their size;
-- the two that are computed (ctr + 1, req + 1) are printed with %.0f.

local key = KEYS[1]
local f = redis.call('HMGET', key, 'ctr', 'req', 'seen', 'rot', 'ret', 'rev',
  'ends', 'idle', 'sup', 'uid', 'created', 'meta')
if not f[1] then
  return false
end
local ctr, req, seen, rot = tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
local ends, idle = tonumber(f[7]), tonumber(f[8])
if not (ctr and req and seen and rot and ends and idle and f[5] and f[10] and f[11] and f[12]) then
  return redis.error_reply('CORRUPT session hash ' .. key .. ' lacks a field')
end
local rev = f[6] or ''

local function reply(verdict)
  return { verdict, f[1], f[2], f[3], f[4], f[5], rev, f[10], f[11], f[12] }
end

local now = tonumber(ARGV[2])
if rev ~= '' then
  return reply('revoked')
end
if now >= ends then
  return reply('expired')
end
if now >= seen + idle then
  return reply('idle_timeout')
end
local presented = tonumber(ARGV[1])
if presented > ctr then
  return reply('ahead')
end

local retired = {}
for at in string.gmatch(f[5], '[^,]+') do
  if not tonumber(at) then
    return redis.error_reply('CORRUPT session hash ' .. key .. ' has a bad retired list')
  end
  retired[#retired + 1] = at
end
local depth, window = tonumber(ARGV[3]), tonumber(ARGV[4])
local slack = tonumber(ARGV[7])

-- The request is accepted: count it, move last_seen forward, renew the TTL
-- to the session's next deadline.
local function accept()
  req = req + 1
  f[2] = string.format('%.0f', req)
  if now > seen then
    seen = now
    f[3] = ARGV[2]
  end
end
local function store_and_expire()
  redis.call('HSET', key, 'ctr', f[1], 'req', f[2], 'seen', f[3], 'rot', f[4], 'ret', f[5])
  local purge = math.min(ends, seen + idle)
  local ttl = math.min(math.max(purge - now, 0) + slack, 1e12)
  redis.call('PEXPIRE', key, string.format('%.0f', math.max(ttl, 1)))
end

if presented < ctr then
  local age = ctr - presented
  local n = #retired
  if age <= depth and age <= n then
    local at = tonumber(retired[n - age + 1])
    -- now.saturating_sub(at) <= window: a negative difference is <= too.
    if now - at <= window then
      accept()
      store_and_expire()
      return reply('grace')
    end
  end
  rev = 'token_reused'
  redis.call('HSET', key, 'rev', rev)
  return reply('reused')
end

accept()
local rotate
if f[9] == '1' then
  rotate = false
elseif ARGV[5] == 'a' then
  rotate = true
elseif ARGV[5] == 'n' then
  rotate = false
elseif ARGV[5] == 'e' then
  local every = tonumber(ARGV[6])
  rotate = every <= 1 or math.fmod(req, every) == 0
else
  rotate = math.max(now - rot, 0) >= tonumber(ARGV[6])
end
if not rotate then
  store_and_expire()
  return reply('current')
end
f[1] = string.format('%.0f', ctr + 1)
f[4] = ARGV[2]
retired[#retired + 1] = ARGV[2]
local keep = {}
for i = math.max(#retired - depth + 1, 1), #retired do
  keep[#keep + 1] = retired[i]
end
f[5] = table.concat(keep, ',')
store_and_expire()
return reply('rotated')
