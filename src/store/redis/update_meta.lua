-- update_meta: replaces the descriptive half of a session, never its
-- sequence fields, and moves its TTL to the new deadlines.
--
-- KEYS[1]  the session hash
-- ARGV     meta, ends, idle, sup, expiry slack (ms)
-- Reply: false if there is no such session, else { old ends, seen }.
local seen = redis.call('HGET', KEYS[1], 'seen')
if not seen then
  return false
end
local old_ends = redis.call('HGET', KEYS[1], 'ends') or '0'
redis.call('HSET', KEYS[1], 'meta', ARGV[1], 'ends', ARGV[2], 'idle', ARGV[3], 'sup', ARGV[4])
-- Relative to the last request rather than to now (a script has no
-- application clock): never shorter than the true remaining time.
local s = tonumber(seen)
local purge = math.min(tonumber(ARGV[2]), s + tonumber(ARGV[3]))
local ttl = math.min(math.max(purge - s, 0) + tonumber(ARGV[5]), 1e12)
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.max(ttl, 1)))
return { old_ends, seen }
