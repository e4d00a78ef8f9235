-- reset.lua: forcibly delete a lock, whoever holds it, and wake one waiter.
--
-- KEYS[1]  lock key         (lock:<name>)
-- KEYS[2]  signal key       (lock-signal:<name>)
-- ARGV[1]  signal expire in ms
--
-- Returns the number of lock keys deleted: 1 if the lock was held, else 0.
redis.call('del', KEYS[2])
redis.call('lpush', KEYS[2], 1)
redis.call('pexpire', KEYS[2], ARGV[1])
return redis.call('del', KEYS[1])
