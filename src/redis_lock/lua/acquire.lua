-- acquire.lua: try to take the lock in one round trip.
--
-- KEYS[1]  lock key         (lock:<name>), holds the owner id
-- KEYS[2]  signal key       (lock-signal:<name>), the waiters' wake-up list
-- ARGV[1]  owner id         (a non-empty string)
-- ARGV[2]  expire in ms     ("0" means the lock never expires)
-- ARGV[3]  "1" if an "owned" reply means this call holds the lock (its id was
--          generated for the caller, which alone sends it: see
--          _core.owned_is_ours); the key's expiry is then set again, as a
--          fresh grant would. "0" or absent: owned means AlreadyAcquired.
--
-- Returns a two-element array {code, value}:
--   {0, 0}      acquired; a stale wake-up signal, if any, was deleted so that
--               no waiter wakes only to find the lock taken again
--   {1, pttl}   busy: held by another id; pttl is the holder's remaining time
--               to live in ms, or -1 when the holder's key has no expiry
--   {2, pttl}   already held by this same id: AlreadyAcquired, or with
--               ARGV[3] "1" taken by this call (pttl is then the old one)
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
    if ARGV[3] == '1' and px > 0 then
        redis.call('pexpire', KEYS[1], px)
    end
    return {2, pttl}
end
return {1, pttl}
