-- reset_all.lua: reset a batch of locks found by SCAN, waking one waiter of each.
--
-- KEYS     the lock keys (lock:<name>) KEYS[1..n], then signal keys
--          (lock-signal:<name>) KEYS[n+1..]; the caller derives them from the
--          keys SCAN found, so this script touches no key that it was not given.
--          On a cluster all of them share one slot: a lock key and its signal
--          key may come in different calls, when a program other than redis_lock
--          wrote a lock key without a hash tag.
-- ARGV[1]  signal expire in ms
-- ARGV[2]  n, the number of lock keys
--
-- Returns the number of lock keys deleted (a key that expired or was released
-- between the SCAN and this call is not counted).
local n = tonumber(ARGV[2])
local deleted = 0
for i = 1, n do
    deleted = deleted + redis.call('del', KEYS[i])
end
for i = n + 1, #KEYS do
    redis.call('del', KEYS[i])
    redis.call('lpush', KEYS[i], 1)
    redis.call('pexpire', KEYS[i], ARGV[1])
end
return deleted
