-- revoke: revokes a lineage evicted from its user's index (the per-user
-- limit), keeping its hash until its TTL as a tombstone, so its next
-- request learns why (`session_evicted`).
--
-- KEYS[1]  the lineage hash
-- ARGV[1]  the user id the index belongs to   ARGV[2] the reason
-- Reply: the lineage's current id if it was live (or still being
-- created) and is now revoked, false otherwise (gone, another user's, or
-- already revoked).
local f = redis.call('HMGET', KEYS[1], 'uid', 'rev', 'ids')
if not (f[1] and f[2] and f[3]) or f[1] ~= ARGV[1] then
  return false
end
if f[2] ~= '' and f[2] ~= 'pending' then
  return false
end
redis.call('HSET', KEYS[1], 'rev', ARGV[2])
return string.match(f[3], '([^,]+)$') or false
