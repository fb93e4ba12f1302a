-- delete: removes a lineage hash if the id is one of its ids, or if it
-- belongs to a user.
--
-- KEYS[1]  the lineage hash
-- ARGV[1]  'id' to require ARGV[2] among the lineage's ids,
--          'owner' to require ARGV[2] as its user id
-- Reply: the owner's user id if deleted, false otherwise.
local f = redis.call('HMGET', KEYS[1], 'uid', 'ids')
local uid = f[1]
if not uid then
  return false
end
if ARGV[1] == 'owner' then
  if ARGV[2] ~= uid then
    return false
  end
elseif not (f[2] and ARGV[2] ~= ''
    and string.find(',' .. f[2] .. ',', ',' .. ARGV[2] .. ',', 1, true)) then
  return false
end
redis.call('DEL', KEYS[1])
return uid
