-- create: stores a new session hash unless the id is taken.
--
-- KEYS[1]  the session hash
-- ARGV     uid, created, ends, idle, sup, meta, ctr, req, seen, rot, ret,
--          rev, ttl (ms)
-- Reply: 1 if created, 0 if the id is taken.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1],
  'uid', ARGV[1], 'created', ARGV[2], 'ends', ARGV[3], 'idle', ARGV[4],
  'sup', ARGV[5], 'meta', ARGV[6], 'ctr', ARGV[7], 'req', ARGV[8],
  'seen', ARGV[9], 'rot', ARGV[10], 'ret', ARGV[11], 'rev', ARGV[12])
redis.call('PEXPIRE', KEYS[1], ARGV[13])
return 1
