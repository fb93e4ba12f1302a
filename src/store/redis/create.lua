-- create: stores a new lineage hash unless its key (the lineage) is taken.
--
-- KEYS[1]  the lineage hash
-- ARGV     ids, uid, created, meta, ctr, pre, req, seen, iss, ret, rev,
--          ends, idle (the record's fields, in the order the store reads
--          them), ttl (ms)
-- Reply: false if created; if the lineage is taken, the user id that owns
-- it ('' if the hash has none), so the caller can drop the index entry it
-- added for another user.
local owner = redis.call('HGET', KEYS[1], 'uid')
if owner then
  return owner
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return ''
end
redis.call('HSET', KEYS[1],
  'ids', ARGV[1], 'uid', ARGV[2], 'created', ARGV[3], 'meta', ARGV[4],
  'ctr', ARGV[5], 'pre', ARGV[6], 'req', ARGV[7], 'seen', ARGV[8],
  'iss', ARGV[9], 'ret', ARGV[10], 'rev', ARGV[11], 'ends', ARGV[12],
  'idle', ARGV[13])
redis.call('PEXPIRE', KEYS[1], ARGV[14])
return false
