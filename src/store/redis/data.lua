-- write_data: per-key writes to a session's data, in the lineage hash
-- itself (fields 'd:<key>', total size in 'dsz'), so the data shares the
-- record's TTL and goes with it. The token sequence is never touched.
--
-- KEYS[1]  the lineage hash
-- ARGV[1]  an id of the lineage (32 hex digits)   ARGV[2]  now (ms)
-- ARGV[3]  the most bytes the data may hold       ARGV[4]  '1': clear first
-- ARGV[5]  the sealing overhead per value (bytes a sealed value has
--          beyond its plaintext; values sealed start with byte 1)
-- ARGV[6..] triples: key, plaintext length ('' to remove), stored value
--
-- Reply: false if there is no such lineage, the id is not one of its ids,
-- or the session is dead (revoked, pending, expired, idle); else
-- { 'too_large', size } (nothing written) or { 'ok', size }. Sizes count
-- every key's and plaintext value's length (SessionData::size).
local key = KEYS[1]
local f = redis.call('HMGET', key, 'ids', 'rev', 'ends', 'seen', 'idle', 'dsz')
if not (f[1] and f[2] and f[3] and f[4] and f[5]) then
  return false
end
if f[2] ~= '' or ARGV[1] == ''
  or not string.find(',' .. f[1] .. ',', ',' .. ARGV[1] .. ',', 1, true) then
  return false
end
local now, ends, seen, idle = tonumber(ARGV[2]), tonumber(f[3]), tonumber(f[4]), tonumber(f[5])
if not (ends and seen and idle) then
  return redis.error_reply('CORRUPT lineage hash ' .. key .. ' has a field that is not a number')
end
if now >= ends or now >= seen + idle then
  return false
end

local overhead = tonumber(ARGV[5])
local function plain_len(stored)
  if string.byte(stored, 1) == 1 then
    return math.max(#stored - overhead, 0)
  end
  return #stored
end

local clear = ARGV[4] == '1'
local size = 0
local existing = {}
if clear then
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'd:' then
      existing[#existing + 1] = all[i]
    end
  end
else
  size = tonumber(f[6] or '0') or 0
end
for i = 6, #ARGV, 3 do
  local name, len = ARGV[i], ARGV[i + 1]
  if not clear then
    local old = redis.call('HGET', key, 'd:' .. name)
    if old then
      size = size - #name - plain_len(old)
    end
  end
  if len ~= '' then
    size = size + #name + tonumber(len)
  end
end
size = math.max(size, 0)
if size > tonumber(ARGV[3]) then
  return { 'too_large', string.format('%.0f', size) }
end
for _, field in ipairs(existing) do
  redis.call('HDEL', key, field)
end
for i = 6, #ARGV, 3 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', key, 'd:' .. ARGV[i])
  else
    redis.call('HSET', key, 'd:' .. ARGV[i], ARGV[i + 2])
  end
end
if size > 0 then
  redis.call('HSET', key, 'dsz', string.format('%.0f', size))
else
  redis.call('HDEL', key, 'dsz')
end
return { 'ok', string.format('%.0f', size) }
