-- semaphore_set_limit.lua: store a new limit for a semaphore; wake a waiter if
-- permits are free under it.
--
-- KEYS[1]  permits key      (sem:<name>)
-- KEYS[2]  signal key       (sem-signal:<name>)
-- KEYS[3]  limit key        (sem-limit:<name>)
-- ARGV[1]  the new limit    (an integer >= 1)
-- ARGV[2]  how long the stored limit outlives the last permit, in ms
-- ARGV[3]  signal expire in ms
--
-- Returns the limit stored before, or -1 when none was. Holders above a lower
-- limit keep their permits; no new permit is granted until fewer are held.
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
local before = tonumber(redis.call('get', KEYS[3]) or '-1') or -1
local last = redis.call('zrange', KEYS[1], -1, -1, 'WITHSCORES')
local retention = tonumber(ARGV[2])
if last[2] == 'inf' or last[2] == '+inf' then
    redis.call('set', KEYS[3], ARGV[1])
elseif last[2] then
    redis.call('set', KEYS[3], ARGV[1], 'PX', math.max(tonumber(last[2]) - now, retention))
else
    redis.call('set', KEYS[3], ARGV[1], 'PX', retention)
end
if redis.call('zcard', KEYS[1]) < tonumber(ARGV[1]) then
    if redis.call('llen', KEYS[2]) == 0 then
        redis.call('lpush', KEYS[2], 1)
    end
    redis.call('pexpire', KEYS[2], ARGV[3])
end
return before
