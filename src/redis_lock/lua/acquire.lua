-- acquire.lua: try to take the lock in one round trip.
--
-- KEYS[1]  lock key         (lock:<name>), holds the owner id
-- KEYS[2]  signal key       (lock-signal:<name>), the waiters' wake-up list
-- ARGV[1]  owner id         (a non-empty string)
-- ARGV[2]  expire in ms     ("0" means the lock never expires)
--
-- Returns a two-element array {code, value}:
--   {0, 0}      acquired; a stale wake-up signal, if any, was deleted so that
--               no waiter wakes only to find the lock taken again
--   {1, pttl}   busy: held by another id; pttl is the holder's remaining time
--               to live in ms, or -1 when the holder's key has no expiry
--   {2, pttl}   busy: already held by this same id (AlreadyAcquired)
local px = tonumber(ARGV[2])
local ok
if px > 0 then
    ok = redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', px)
else
    ok = redis.call('set', KEYS[1], ARGV[1], 'NX')
end
if ok then
    redis.call('del', KEYS[2])
    return {0, 0}
end
local pttl = redis.call('pttl', KEYS[1])
if redis.call('get', KEYS[1]) == ARGV[1] then
    return {2, pttl}
end
return {1, pttl}
