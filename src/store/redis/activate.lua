-- activate: makes a session created under the per-user limit usable once
-- its user's index admitted it (`create_limited`: the hash is written
-- first as 'pending', which every other script treats as absent, then
-- admitted, then activated here).
--
-- KEYS[1]  the lineage hash
-- ARGV[1]  its ids, as written     ARGV[2] the revocation field to set
--          ('' for a live session)  ARGV[3] the TTL (ms)
-- Reply: 'active'; 'evicted' if a newer login evicted it while it was
-- being created (it stays, revoked, until its TTL); 'gone' if it vanished
-- (deleted with its user's sessions, or its pending TTL passed).
local f = redis.call('HMGET', KEYS[1], 'rev', 'ids')
if not f[1] or f[2] ~= ARGV[1] then
  return 'gone'
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if f[1] ~= 'pending' then
  return f[1] == 'evicted' and 'evicted' or 'gone'
end
redis.call('HSET', KEYS[1], 'rev', ARGV[2])
return 'active'
