-- semaphore_extend.lua: reset the expiry of the permit this id holds.
--
-- KEYS[1]  permits key      (sem:<name>)
-- KEYS[2]  limit key        (sem-limit:<name>)
-- ARGV[1]  holder id
-- ARGV[2]  new expire in ms (a positive integer)
-- ARGV[3]  how long the stored limit outlives the last permit, in ms
--
-- Returns (the codes of extend.lua, so renewal reads both alike):
--   0  extended
--   1  this id holds no permit (NotAcquired): never acquired, reset, or expired
--   2  this id holds a permit without expiry (NotExpirable)
--
-- Expired permits are reclaimed first: an expired permit is gone, and extending
-- it must not bring it back (its place may already be someone else's).
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
local held = redis.call('zscore', KEYS[1], ARGV[1])
if not held then
    return 1
end
if held == 'inf' or held == '+inf' then
    return 2
end
redis.call('zadd', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('zrange', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] ~= 'inf' and last[2] ~= '+inf' then
    local ttl = tonumber(last[2]) - now
    redis.call('pexpire', KEYS[1], ttl)
    -- The stored limit must outlive every permit: a permit renewed for longer than
    -- the retention would otherwise outlive the limit, and its check with it.
    local left = redis.call('pttl', KEYS[2])
    if left >= 0 and left < ttl + tonumber(ARGV[3]) then
        redis.call('pexpire', KEYS[2], ttl + tonumber(ARGV[3]))
    end
end
return 0
