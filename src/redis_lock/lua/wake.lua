-- wake.lua: push one wake-up onto a list, for the waiters' hub (_waiting).
--
-- KEYS[1]  the list: a lock's signal list (lock-signal:<name>), to give back a
--          signal no local waiter took, or a hub's control list
--          (lock-waiters:...), to make its BLPOP return and block again on a
--          new set of keys
-- KEYS[2]  the lock key (lock:<name>), optional: give the signal back only if
--          the lock is free (a grant deletes stale signals, as acquire.lua does)
-- ARGV[1]  the list's expire in ms
-- ARGV[2]  the element to push, optional (default "1"): a signal given back as
--          it was popped (a fair waiter's hand-off carries its fencing token)
--
-- Returns 1 if the list holds one element now, 0 if the lock was held (nothing
-- pushed). The list never gets a second element: one wake-up wakes one waiter.
if KEYS[2] and redis.call('exists', KEYS[2]) == 1 then
    return 0
end
if redis.call('llen', KEYS[1]) == 0 then
    redis.call('lpush', KEYS[1], ARGV[2] or 1)
end
redis.call('pexpire', KEYS[1], ARGV[1])
return 1
