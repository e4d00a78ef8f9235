-- semaphore_reset.lua: forcibly drop every permit of a semaphore and its stored
-- limit, whoever holds them, and wake one waiter.
--
-- KEYS[1]  permits key      (sem:<name>)
-- KEYS[2]  signal key       (sem-signal:<name>)
-- KEYS[3]  limit key        (sem-limit:<name>)
-- ARGV[1]  signal expire in ms
--
-- Returns the number of permits dropped (expired ones not counted). The woken
-- waiter passes the wake-up on while permits stay free (semaphore_acquire.lua).
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
local dropped = redis.call('zcard', KEYS[1])
redis.call('del', KEYS[1])
redis.call('del', KEYS[3])
redis.call('del', KEYS[2])
redis.call('lpush', KEYS[2], 1)
redis.call('pexpire', KEYS[2], ARGV[1])
return dropped
