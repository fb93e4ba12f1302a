-- verify_and_advance: SessionRecord::advance (src/record/mod.rs), applied
-- atomically to one lineage hash in one round trip.
--
-- KEYS[1]  the lineage hash
-- ARGV[1]  the id the presented token carries (32 hex digits)
-- ARGV[2]  presented counter c     ARGV[3]  now (ms since the epoch)
-- ARGV[4]  grace depth K           ARGV[5]  grace window T (ms)
-- ARGV[6]  rotate: a(lways) n(ever) e(very n) i(min interval)
--          u(replace an undelivered token: Rotate::ReplaceUndelivered)
-- ARGV[7]  the rotate parameter    ARGV[8]  expiry slack (ms)
-- ARGV[9]  the new id if this request moves the lineage (renewal,
--          elevation), else ''
-- ARGV[10] the deadline, ms since the epoch on this server's clock ('' for
--          none): past it the node has given up waiting for the reply, so
--          the command is refused unapplied ({ 'late', secs, micros }). A
--          command stuck on a cut link or queued behind a hang is otherwise
--          applied with the time it was sent, long after its token was
--          retired and forgotten: that would read as theft.
-- ARGV[11] N (max ahead): a counter at most this far above the live one
--          fast-forwards the sequence (the store lost writes); further,
--          or with 0, it is 'ahead'
--
-- Reply: false if there is no such lineage (or it is still being created:
-- rev 'pending') or ARGV[1] is not one of its ids, else { verdict, ids,
-- uid, created, meta, ctr, pre, req, seen, iss, ret, rev, ends, idle,
-- ['d:<key>', value]..., secs, micros }: the session's data (see
-- data.lua) follows the record when the verdict accepts the request and
-- 'dsz' says there is some; `secs, micros` are this server's clock as
-- TIME gives it, from which the node learns its offset to the node's
-- clock for the next deadlines.
--
-- Fields: ids  the lineage's ids, comma-separated, oldest first, the
--              current one (for which tokens are minted) last
--         ctr  n, the live counter      pre  p, the highest presented
--                                            counter ('' for none yet)
--         req  requests accepted        seen last accepted request
--         iss  when n was issued        ret  retirements, oldest first,
--                                            'from-to@at' comma-separated
--         rev  revocation reason ('' if live, 'pending' while
--              create_limited has not admitted it yet)
--         ends, idle: the deadlines the rule needs of the meta.
--
-- Numbers are Lua doubles: exact for counters and ms timestamps below
-- 2^53 (see docs/redis.md). Values that only move are written back as the
-- decimal strings they came in as, so they stay exact whatever their size;
-- those that are computed (n + 1, c + 1, req + 1) are printed by int()
-- below, exactly.

local key = KEYS[1]
local clock = redis.call('TIME')
-- An integral double as decimal digits: '%d' (a C long) below 2^53, where
-- doubles are exact and which is much cheaper than '%.0f', kept above it.
local function int(x)
  if x < 9007199254740992 and x > -9007199254740992 then
    return string.format('%d', x)
  end
  return string.format('%.0f', x)
end
-- The server's clock goes back as TIME gave it (seconds, microseconds):
-- no number is printed for it.
if ARGV[10] ~= '' and clock[1] * 1000 + math.floor(clock[2] / 1000) > ARGV[10] + 0 then
  return { 'late', clock[1], clock[2] }
end
local f = redis.call('HMGET', key, 'ids', 'uid', 'created', 'meta', 'ctr',
  'pre', 'req', 'seen', 'iss', 'ret', 'rev', 'ends', 'idle', 'dsz', 'rsum')
local present = false
for i = 1, 13 do
  if f[i] then
    present = true
  end
end
if not present then
  return false
end
-- (The errors are written out where they are returned: a function made
-- per call for them costs as much as a few arithmetic operations.)
for i = 1, 13 do
  if not f[i] then
    return redis.error_reply('CORRUPT lineage hash ' .. key .. ' lacks a field')
  end
end
-- The numbers: `s + 0` reads a string as tonumber(s) does (the same
-- strtod) but once, where tonumber reads it twice; a field that is not a
-- number fails the arithmetic, caught here.
local numbers, ctr, req, seen, iss, ends, idle = pcall(function()
  return f[5] + 0, f[7] + 0, f[8] + 0, f[9] + 0, f[12] + 0, f[13] + 0
end)
if not numbers then
  return redis.error_reply('CORRUPT lineage hash ' .. key .. ' has a field that is not a number')
end
local pre = nil
if f[6] ~= '' then
  if not string.find(f[6], '^%d+$') then
    return redis.error_reply('CORRUPT lineage hash ' .. key .. ' has a bad presented counter')
  end
  pre = f[6] + 0
end

-- The lineage's ids; the presented one must be among them. Each is 32
-- lowercase hex digits, a comma after all but the last: checked in place,
-- the longest run of such digits from where each starts (it ends at the
-- comma or the end), no substring made.
local ids = f[1]
local member = false
if #ids % 33 ~= 32 then
  return redis.error_reply('CORRUPT lineage hash ' .. key .. ' has a bad id list')
end
for at = 1, #ids, 33 do
  local _, last = string.find(ids, '^[0-9a-f]+', at)
  if last ~= at + 31 or (at + 32 <= #ids and string.byte(ids, at + 32) ~= 44) then
    return redis.error_reply('CORRUPT lineage hash ' .. key .. ' has a bad id list')
  end
end
do
  local at = string.find(ids, ARGV[1], 1, true)
  member = #ARGV[1] == 32 and at ~= nil and at % 33 == 1
end
if not member or f[11] == 'pending' then
  return false
end

-- Retirements: 'from-to@at' texts, oldest first, comma-separated, kept as
-- text. With K = 64 entries, reading them all on every request was most of
-- the script's cost; a request with the live token need not: 'rsum'
-- summarizes the list this script last wrote, '<bytes>:<entries>:<newest
-- time>:<where the last entry starts>', when its times are in order
-- (oldest first, as retirements are made unless a clock steps back). Then
-- the window forgets a prefix and K keeps a suffix: a retirement is a cut
-- and a push, found from the ends of the text. A list without a summary
-- that fits (an older hash, one written by create, times out of order, a
-- summary of the earlier form without the last entry's place) is read
-- whole once, entries and separators checked exactly, and summarized if it
-- is in order.
--
-- Only the paths that change the list or look into it read it (read_ret,
-- before anything is written): a refusal, 'pending' and a 'current' that
-- only counts reply and write 'req' and 'seen' without it (the node reads
-- the list it is sent, every entry checked). A summary that does not fit
-- is rewritten by the next request that reads it.
local ret_read, ret_sorted, ret_count, ret_newest, ret_last = false, false, 0, nil, nil
-- nil, or the error to answer if the list is not well formed.
local function read_ret()
  if ret_read then
    return nil
  end
  ret_read = true
  local text = f[10]
  local bytes, count, newest, last = string.match(f[15] or '', '^(%d+):(%d+):(%d*):(%d*)$')
  -- The summary fits the text: its length, and its first and last entries
  -- (the last one's time the newest, a comma before it), each matched
  -- where it starts.
  local fits = false
  if bytes and bytes + 0 == #text then
    if count == '0' then
      fits = text == ''
    elseif newest ~= '' and last ~= '' then
      last = last + 0
      fits = (last == 1 or string.byte(text, last - 1) == 44)
        and string.find(text, '^%d+%-%d+@%d+') ~= nil
        and string.find(text, '^%d+%-%d+@' .. newest .. '$', last) ~= nil
    end
  end
  if fits then
    ret_sorted, ret_count, ret_last = true, count + 0, last
    ret_newest = newest ~= '' and newest + 0 or nil
  else
    local expect, well_formed, sorted = 1, true, true
    for p, at, q in string.gmatch(text, '()%d+%-%d+@(%d+)()') do
      -- Each entry starts where the last one's comma ended it, and is
      -- followed by a comma or the end.
      if p ~= expect or (q <= #text and string.byte(text, q) ~= 44) then
        well_formed = false
        break
      end
      expect, ret_last = q + 1, p
      at = at + 0
      if ret_newest and at < ret_newest then
        sorted = false
      end
      ret_newest = math.max(ret_newest or at, at)
      ret_count = ret_count + 1
    end
    if not well_formed or (text ~= '' and expect ~= #text + 2) then
      return redis.error_reply('CORRUPT lineage hash ' .. key .. ' has a bad retired list')
    end
    ret_sorted = sorted
  end
  return nil
end

local function reply(verdict)
  local out = { verdict, f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11],
    f[12], f[13] }
  local refused = verdict == 'revoked' or verdict == 'expired' or verdict == 'idle_timeout'
    or verdict == 'ahead' or verdict == 'reused'
  if not refused and f[14] and f[14] ~= '0' then
    -- The data fields, as 'd:<key>', value, ...
    local all = redis.call('HGETALL', key)
    for i = 1, #all, 2 do
      if string.sub(all[i], 1, 2) == 'd:' then
        out[#out + 1] = all[i]
        out[#out + 1] = all[i + 1]
      end
    end
  end
  out[#out + 1] = clock[1]
  out[#out + 1] = clock[2]
  return out
end

local now = ARGV[3] + 0
if f[11] ~= '' then
  return reply('revoked')
end
if now >= ends then
  return reply('expired')
end
-- seen.saturating_add(idle): doubles do not overflow.
if now >= seen + idle then
  return reply('idle_timeout')
end
local c = ARGV[2] + 0
if c > ctr and (ARGV[6] == 'u' or c - ctr > (tonumber(ARGV[11]) or 0)) then
  return reply('ahead')
end

local window = ARGV[5] + 0
-- (Each local that a function below uses costs an allocation per call,
-- about as much as 8 lookups of string.find: what one function alone
-- needs, it reads from ARGV itself.)

-- The request is accepted: count it, move last_seen forward; whether it
-- moved.
local function accept()
  req = req + 1
  f[7] = int(req)
  if now > seen then
    seen = now
    f[8] = ARGV[3]
    return true
  end
  return false
end
-- SequenceState::retire: forget what is older than the window, push, keep
-- the last max(K, 1). `from_text`, `to_text` are exact decimal strings.
local function retire(from_text, to_text)
  local horizon = math.max(now - window, 0)
  local entry = from_text .. '-' .. to_text .. '@' .. ARGV[3]
  local keep = math.max(ARGV[4] + 0, 1)
  if ret_sorted then
    -- In order: the entries the window forgets are the first ones. The
    -- text is cut once, where the entries kept start.
    local text, count, from = f[10], ret_count, 1
    while count > 0 do
      local _, last, at = string.find(text, '^%d+%-%d+@(%d+)', from)
      if not at or at + 0 >= horizon then
        break
      end
      from, count = last + 2, count - 1
    end
    if count > 0 then
      ret_sorted = now >= ret_newest
      ret_newest = math.max(ret_newest, now)
    else
      ret_newest = now
    end
    -- Push, and keep the last K: skip the oldest entries beyond them.
    local drop = count + 1 - keep
    while drop > 0 and count > 0 do
      local comma = string.find(text, ',', from, true)
      from = comma and comma + 1 or #text + 1
      drop, count = drop - 1, count - 1
    end
    if count > 0 then
      text = string.sub(text, from) .. ',' .. entry
    else
      text = entry
    end
    ret_last = #text - #entry + 1
    count = count + 1
    f[10], ret_count = text, count
  else
    local kept, times = {}, {}
    for text, at in string.gmatch(f[10], '(%d+%-%d+@(%d+))') do
      at = at + 0
      if at >= horizon then
        kept[#kept + 1] = text
        times[#times + 1] = at
      end
    end
    kept[#kept + 1] = entry
    times[#times + 1] = now
    local first = math.max(#kept - keep + 1, 1)
    f[10] = table.concat(kept, ',', first, #kept)
    ret_last = #f[10] - #entry + 1
    -- The list kept may be in order again (the out-of-order entry gone).
    ret_sorted, ret_count, ret_newest = true, #kept - first + 1, times[first]
    for i = first + 1, #kept do
      if times[i] < ret_newest then
        ret_sorted = false
      end
      ret_newest = math.max(ret_newest, times[i])
    end
  end
end
-- SessionRecord::issue: the next token, and the move to the new id if
-- one is asked for, differs from the current one and shares the lineage.
local function issue()
  f[5] = int(ctr + 1)
  f[9] = ARGV[3]
  local current = string.sub(f[1], -32)
  local new_id = ARGV[9]
  if new_id ~= '' and new_id ~= current and #new_id == 32
    and string.sub(new_id, 1, 16) == string.sub(current, 1, 16) then
    f[1] = f[1] .. ',' .. new_id
  end
end
-- Writes the sequence back and renews the TTL to the next deadline.
-- `seen_moved`: accept() moved 'seen'. `counted`: the request only counted
-- (pending, grace, current after the first use) and the sequence did not
-- move, so only 'req' and 'seen' are written (and 'rsum' if a list read
-- whole was summarized). Every path that writes more has called
-- read_ret() before anything was written. The TTL moves with 'seen' only:
-- the deadlines it follows, min(ends, seen + idle), move with nothing else
-- here, so the expiry the request that set 'seen' gave is still the right
-- one.
local function store_and_expire(seen_moved, counted)
  local rsum = f[15]
  if not ret_read then
    -- A request that only counts: the list and its summary stay.
    assert(counted, 'the retired list was not read')
  elseif not ret_sorted then
    rsum = ''
  else
    if ret_count > 0 then
      -- The newest retirement is most often this request's (ARGV[3] is
      -- its time as int() would print it).
      local newest = ret_newest == now and ARGV[3] or int(ret_newest)
      rsum = string.format('%d:%d:%s:%d', #f[10], ret_count, newest, ret_last)
    else
      rsum = '0:0::'
    end
  end
  if counted and rsum == f[15] then
    redis.call('HSET', key, 'req', f[7], 'seen', f[8])
  elseif f[1] == ids then
    -- The ids did not move (strings are interned: one comparison).
    redis.call('HSET', key, 'ctr', f[5], 'pre', f[6], 'req', f[7], 'seen', f[8], 'iss', f[9],
      'ret', f[10], 'rsum', rsum)
  else
    redis.call('HSET', key, 'ids', f[1], 'ctr', f[5], 'pre', f[6], 'req', f[7],
      'seen', f[8], 'iss', f[9], 'ret', f[10], 'rsum', rsum)
  end
  if seen_moved then
    local purge = math.min(ends, seen + idle)
    local ttl = math.min(math.max(purge - now, 0) + ARGV[8], 1e12)
    redis.call('PEXPIRE', key, int(math.max(ttl, 1)))
  end
end

if c > ctr then
  -- Fast-forward: the server minted c (its tag verified), so the store
  -- lost the writes that issued it. c becomes the live token, in use, with
  -- no new token; p (if older than n) and n..c-1 are retired now.
  local bad = read_ret()
  if bad then
    return bad
  end
  local seen_moved = accept()
  if pre and pre < ctr then
    retire(f[6], f[6])
  end
  retire(f[5], int(c - 1))
  f[5] = ARGV[2]
  f[6] = ARGV[2]
  f[9] = ARGV[3]
  store_and_expire(seen_moved, false)
  return reply('fast_forward')
end

if ARGV[6] == 'u' then
  -- AdvanceRequest::undelivered: replace the live token this request was
  -- issued, if it still is the live one and unused; else change nothing.
  if c ~= ctr or pre == ctr then
    return reply('pending')
  end
  local bad = read_ret()
  if bad then
    return bad
  end
  issue()
  store_and_expire(false, false)
  return reply('rotated')
end

if c == ctr then
  local seen_moved = accept()
  local rotate
  if ARGV[9] ~= '' or ARGV[6] == 'a' then
    rotate = true
  elseif ARGV[6] == 'n' then
    rotate = false
  elseif ARGV[6] == 'e' then
    local every = ARGV[7] + 0
    rotate = every <= 1 or math.fmod(req, every) == 0
  else
    rotate = math.max(now - iss, 0) >= (ARGV[7] + 0)
  end
  if pre ~= ctr or rotate then
    local bad = read_ret()
    if bad then
      return bad
    end
  end
  if pre ~= ctr then
    -- First use of the live token: its predecessor is retired.
    if pre then
      retire(f[6], f[6])
    end
    f[6] = f[5]
  end
  if not rotate then
    store_and_expire(seen_moved, pre == ctr)
    return reply('current')
  end
  issue()
  store_and_expire(seen_moved, false)
  return reply('rotated')
end

if pre == c then
  local seen_moved = accept()
  -- now.saturating_sub(issued_at) <= 2T: a negative difference is <= too.
  if now - iss <= 2 * window then
    store_and_expire(seen_moved, true)
    return reply('pending')
  end
  -- The live token's response was lost: (c, n] is abandoned. It gets no
  -- retirement: presenting it later is theft at once.
  local bad = read_ret()
  if bad then
    return bad
  end
  issue()
  store_and_expire(seen_moved, false)
  return reply('recovered')
end

-- retired_at(c): the newest retirement covering c.
do
  local bad = read_ret()
  if bad then
    return bad
  end
end
local retired = {}
for from, to, at in string.gmatch(f[10], '(%d+)%-(%d+)@(%d+)') do
  retired[#retired + 1] = { from + 0, to + 0, at + 0 }
end
for i = #retired, 1, -1 do
  local r = retired[i]
  if r[1] <= c and c <= r[2] then
    if now - r[3] <= window then
      local seen_moved = accept()
      store_and_expire(seen_moved, true)
      return reply('grace')
    end
    break
  end
end
f[11] = 'token_reused'
redis.call('HSET', key, 'rev', f[11])
-- A revoked session's data goes with it.
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'd:' then
    redis.call('HDEL', key, all[i])
  end
end
redis.call('HDEL', key, 'dsz')
return reply('reused')
