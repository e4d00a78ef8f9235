-- unlock.lua: release the lock if this id holds it, and wake one waiter.
--
-- KEYS[1]  lock key         (lock:<name>)
-- KEYS[2]  signal key       (lock-signal:<name>)
-- ARGV[1]  owner id
-- ARGV[2]  signal expire in ms (how long an unconsumed wake-up signal lives)
--
-- Returns:
--   0  released: the lock key was deleted and one signal pushed
--   1  not held by this id (never acquired, expired, reset or taken over)
--
-- The signal list is emptied before the push, so it never holds more than one
-- element and a release wakes exactly one waiter, as python-redis-lock 4.x does.
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return 1
end
redis.call('del', KEYS[2])
redis.call('lpush', KEYS[2], 1)
redis.call('pexpire', KEYS[2], ARGV[2])
redis.call('del', KEYS[1])
return 0
