-- admit: admits a new session into its user's index under the per-user
-- limit, in one atomic step (the index is one key: one slot).
--
-- KEYS[1]  the user index: a sorted set of lineage keys (hex) scored by
--          their creation time (ms)
-- ARGV[1]  the new member (lineage key hex)   ARGV[2] its creation time
-- ARGV[3]  the limit (live sessions, the new one included, at least 1)
-- ARGV[4]  'probe': at the limit, change nothing and list the members so
--          the caller can find the dead ones;
--          'refuse' or 'evict': at the limit, refuse, or evict the oldest
-- ARGV[5]  the index's TTL (ms): never shortened
-- ARGV[6..] members the caller found dead (their hash is gone, revoked,
--          expired or idle): removed first
--
-- Reply: { 'admitted', evicted member, its score, ... } (oldest first),
--        { 'full', member, ... } (probe only), { 'refused' }, or
--        { 'taken' } if the member is already listed.
local key = KEYS[1]
for i = 6, #ARGV do
  redis.call('ZREM', key, ARGV[i])
end
if redis.call('ZSCORE', key, ARGV[1]) then
  return { 'taken' }
end
local max = math.max(tonumber(ARGV[3]), 1)
local count = redis.call('ZCARD', key)
local reply = { 'admitted' }
if count >= max then
  if ARGV[4] == 'probe' then
    local members = redis.call('ZRANGE', key, 0, -1)
    table.insert(members, 1, 'full')
    return members
  elseif ARGV[4] ~= 'evict' then
    return { 'refused' }
  end
  -- The oldest: the lowest creation times (then the lowest keys).
  local oldest = redis.call('ZRANGE', key, 0, count - max, 'WITHSCORES')
  for i = 1, #oldest, 2 do
    redis.call('ZREM', key, oldest[i])
    reply[#reply + 1] = oldest[i]
    reply[#reply + 1] = oldest[i + 1]
  end
end
redis.call('ZADD', key, ARGV[2], ARGV[1])
local ttl = tonumber(ARGV[5])
if redis.call('PTTL', key) < ttl then
  redis.call('PEXPIRE', key, ARGV[5])
end
return reply
