-- reset.lua: forcibly delete a lock, whoever holds it, and wake its waiters.
--
-- KEYS[1]  lock key         (lock:<name>)
-- KEYS[2]  signal key       (lock-signal:<name>)
-- KEYS[3]  queue key        (lock-queue:<name>), optional: fair mode's waiters
-- KEYS[4]  waiters key      (lock-queued:<name>), with KEYS[3] (see fair.lua)
-- ARGV[1]  signal expire in ms
-- ARGV[2]  the wake list prefix (lock-wake:<name>:), with KEYS[3]
--
-- Returns the number of lock keys deleted: 1 if the lock was held, else 0.
-- One waiter of the signal list wakes; with KEYS[3], every fair waiter's wake
-- list gets "r" (queue again) and the queue is cleared, a pending hand-off too.
redis.call('del', KEYS[2])
redis.call('lpush', KEYS[2], 1)
redis.call('pexpire', KEYS[2], ARGV[1])
if KEYS[3] then
    local handed = redis.call('hget', KEYS[4], '')
    if handed then
        redis.call('del', ARGV[2] .. string.match(handed, '^%d+|([^|]*)|'))
    end
    for _, token in ipairs(redis.call('zrange', KEYS[3], 0, -1)) do
        local wake = ARGV[2] .. token
        redis.call('del', wake)
        redis.call('rpush', wake, 'r')
        redis.call('pexpire', wake, ARGV[1])
    end
    redis.call('del', KEYS[3], KEYS[4])
end
return redis.call('del', KEYS[1])
