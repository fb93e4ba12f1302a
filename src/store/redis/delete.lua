-- delete: removes a session hash, optionally only if it belongs to a user.
--
-- KEYS[1]  the session hash
-- ARGV[1]  '1' to require ARGV[2] as the owner, '0' for any owner
-- Reply: the owner's user id if deleted, false otherwise.
local uid = redis.call('HGET', KEYS[1], 'uid')
if not uid then
  return false
end
if ARGV[1] == '1' and ARGV[2] ~= uid then
  return false
end
redis.call('DEL', KEYS[1])
return uid
