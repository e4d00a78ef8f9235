-- semaphore_release.lua: give back this id's permit, and wake one waiter.
--
-- KEYS[1]  permits key      (sem:<name>)
-- KEYS[2]  signal key       (sem-signal:<name>)
-- KEYS[3]  limit key        (sem-limit:<name>)
-- KEYS[4]  receipts key     (sem-released:<name>), optional: a hash of holder id
--          to the nonce of its last release call
-- ARGV[1]  holder id
-- ARGV[2]  signal expire in ms
-- ARGV[3]  how long the stored limit outlives the last permit, in ms
-- ARGV[4]  this release call's nonce, with KEYS[4]
-- ARGV[5]  the receipts' expire in ms, with KEYS[4]
--
-- Returns:
--   0  released: the permit was removed and one wake-up is on the signal list;
--      with KEYS[4], the receipt of this id holds this call's nonce
--   1  this id holds no permit (never acquired, expired, or reset): NotAcquired
--   2  no permit, but this id's receipt holds this call's nonce: an earlier copy
--      of this very call released it (the client sent the script again after
--      losing its reply), so the release succeeded (as unlock.lua)
--
-- Expired permits are reclaimed first, so an expired permit is never released
-- as if it were held. The signal list never holds more than one element: a
-- waiter that takes a permit and sees more free passes the wake-up on
-- (semaphore_acquire.lua).
--
-- The key TTLs (see semaphore_acquire.lua): with no permit left, Redis has
-- deleted the empty set and the limit lives ARGV[3] ms more; otherwise both
-- follow the latest permit left. One ZRANGE tells which and reads that permit
-- (a ZCARD first is cheaper when the set empties, but costs one more command
-- whenever permits are left).
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
if redis.call('zrem', KEYS[1], ARGV[1]) == 0 then
    if KEYS[4] and redis.call('hget', KEYS[4], ARGV[1]) == ARGV[4] then
        return 2
    end
    return 1
end
if KEYS[4] then
    redis.call('hset', KEYS[4], ARGV[1], ARGV[4])
    redis.call('pexpire', KEYS[4], ARGV[5])
end
if redis.call('llen', KEYS[2]) == 0 then
    redis.call('lpush', KEYS[2], 1)
end
redis.call('pexpire', KEYS[2], ARGV[2])
local last = redis.call('zrange', KEYS[1], -1, -1, 'WITHSCORES')
local retention = tonumber(ARGV[3])
if last[2] == nil then
    redis.call('pexpire', KEYS[3], retention)
elseif last[2] ~= 'inf' and last[2] ~= '+inf' then
    local ttl = tonumber(last[2]) - now
    redis.call('pexpire', KEYS[1], ttl)
    redis.call('pexpire', KEYS[3], math.max(ttl, retention))
end
return 0
