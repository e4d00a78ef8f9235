-- reset_all.lua: reset a batch of locks found by SCAN, waking one waiter of each.
--
-- KEYS     pairs: KEYS[2i-1] is a lock key (lock:<name>), KEYS[2i] its signal
--          key (lock-signal:<name>); the caller derives the pairs, so this
--          script touches no key that it was not given
-- ARGV[1]  signal expire in ms
--
-- Returns the number of lock keys deleted (a key that expired or was released
-- between the SCAN and this call is not counted).
local deleted = 0
for i = 1, #KEYS, 2 do
    redis.call('del', KEYS[i + 1])
    redis.call('lpush', KEYS[i + 1], 1)
    redis.call('pexpire', KEYS[i + 1], ARGV[1])
    deleted = deleted + redis.call('del', KEYS[i])
end
return deleted
