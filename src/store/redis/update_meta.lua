-- update_meta: replaces the descriptive half of a lineage, never its
-- sequence fields, and moves its TTL to the new deadlines.
--
-- KEYS[1]  the lineage hash
-- ARGV     id (any id of the lineage, 32 hex digits), meta, ends, idle,
--          expiry slack (ms)
-- Reply: false if there is no such lineage (or it is still being created)
-- or the id is not one of its ids, else { old ends, seen, uid, created }.
local f = redis.call('HMGET', KEYS[1], 'ids', 'seen', 'ends', 'uid', 'created', 'rev')
if not (f[1] or f[2] or f[3] or f[4] or f[5] or f[6]) then
  return false
end
if not (f[1] and f[2] and f[3] and f[4] and f[5] and f[6] and tonumber(f[2])) then
  return redis.error_reply('CORRUPT lineage hash ' .. KEYS[1] .. ' lacks a field')
end
if f[6] == 'pending' or ARGV[1] == ''
  or not string.find(',' .. f[1] .. ',', ',' .. ARGV[1] .. ',', 1, true) then
  return false
end
redis.call('HSET', KEYS[1], 'meta', ARGV[2], 'ends', ARGV[3], 'idle', ARGV[4])
-- Relative to the last request rather than to now (a script has no
-- application clock): never shorter than the true remaining time.
local s = tonumber(f[2])
local purge = math.min(tonumber(ARGV[3]), s + tonumber(ARGV[4]))
local ttl = math.min(math.max(purge - s, 0) + tonumber(ARGV[5]), 1e12)
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.max(ttl, 1)))
return { f[3], f[2], f[4], f[5] }
