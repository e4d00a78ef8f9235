-- semaphore_reset_all.lua: reset a batch of semaphores found by SCAN, waking one
-- waiter of each.
--
-- KEYS     the permits keys (sem:<name>) KEYS[1..p], then the limit keys
--          (sem-limit:<name>) KEYS[p+1..p+l], then the signal keys
--          (sem-signal:<name>) KEYS[p+l+1..]; the caller derives them from the
--          keys SCAN found. On a cluster all of them share one slot.
-- ARGV[1]  signal expire in ms
-- ARGV[2]  p, the number of permits keys
-- ARGV[3]  l, the number of limit keys
--
-- Returns the number of permits keys deleted (a semaphore whose permits all
-- expired or were released between the SCAN and this call is not counted).
local p = tonumber(ARGV[2])
local l = tonumber(ARGV[3])
local deleted = 0
for i = 1, p do
    deleted = deleted + redis.call('del', KEYS[i])
end
for i = p + 1, p + l do
    redis.call('del', KEYS[i])
end
for i = p + l + 1, #KEYS do
    redis.call('del', KEYS[i])
    redis.call('lpush', KEYS[i], 1)
    redis.call('pexpire', KEYS[i], ARGV[1])
end
return deleted
