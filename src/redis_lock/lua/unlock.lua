-- unlock.lua: release the lock if this id holds it, and wake one waiter.
--
-- KEYS[1]  lock key         (lock:<name>)
-- KEYS[2]  signal key       (lock-signal:<name>)
-- KEYS[3]  receipt key      (lock-released:<name>), optional
-- ARGV[1]  owner id
-- ARGV[2]  signal expire in ms (how long an unconsumed wake-up signal lives)
-- ARGV[3]  this release call's nonce, optional (with KEYS[3])
-- ARGV[4]  receipt expire in ms, optional (with KEYS[3])
--
-- Returns:
--   0  released: the lock key was deleted and one signal pushed; with a nonce,
--      the receipt key now holds it
--   1  not held by this id (never acquired, expired, reset or taken over)
--   2  not held, but the receipt holds this call's nonce: an earlier copy of
--      this very call released the lock (the client sent the script again after
--      losing its reply), so the release succeeded
--
-- The signal list is emptied before the push, so it never holds more than one
-- element and a release wakes exactly one waiter, as python-redis-lock 4.x does.
-- Called with KEYS[1..2] and ARGV[1..2] only, it is the 4.x release.
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    if KEYS[3] and redis.call('get', KEYS[3]) == ARGV[3] then
        return 2
    end
    return 1
end
redis.call('del', KEYS[2])
redis.call('lpush', KEYS[2], 1)
redis.call('pexpire', KEYS[2], ARGV[2])
redis.call('del', KEYS[1])
if KEYS[3] then
    redis.call('set', KEYS[3], ARGV[3], 'PX', ARGV[4])
end
return 0
