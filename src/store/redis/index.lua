-- index: adds a session to its user's index (a sorted set scored by the
-- session's end of lifetime) and makes the index outlive it.
--
-- KEYS[1]  the user index
-- ARGV     score (ends), member (session id hex), ttl (ms)
redis.call('ZADD', KEYS[1], 'GT', ARGV[1], ARGV[2])
local ttl = tonumber(ARGV[3])
local current = redis.call('PTTL', KEYS[1])
if current < ttl then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
