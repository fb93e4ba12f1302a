-- index: adds a session to its user's index (a sorted set of lineage keys
-- scored by the session's creation time, which never changes) unless it is
-- there, and makes the index outlive it.
--
-- KEYS[1]  the user index
-- ARGV     score (created), member (lineage key hex), ttl (ms)
redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2])
local ttl = tonumber(ARGV[3])
local current = redis.call('PTTL', KEYS[1])
if current < ttl then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
