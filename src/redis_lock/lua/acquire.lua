-- acquire.lua: try to take the lock in one round trip.
--
-- KEYS[1]  lock key         (lock:<name>), holds the owner id
-- KEYS[2]  signal key       (lock-signal:<name>), the waiters' wake-up list
-- KEYS[3]  fence key        (lock-fence:<name>), optional: mint a fencing token
--          with every grant (the last token minted for the name)
-- ARGV[1]  owner id         (a non-empty string)
-- ARGV[2]  expire in ms     ("0" means the lock never expires)
-- ARGV[3]  "1" if an "owned" reply means this call holds the lock (its id was
--          generated for the caller, which alone sends it: see
--          _core.owned_is_ours); the key's expiry is then set again, as a
--          fresh grant would. "0" or absent: owned means AlreadyAcquired.
-- ARGV[4]  the fence key's expire in ms ("0": it never expires), with KEYS[3]
--
-- Returns an array {code, value} (with KEYS[3], {code, value, token} on a grant):
--   {0, 0}      acquired; a stale wake-up signal, if any, was deleted so that
--               no waiter wakes only to find the lock taken again
--   {1, pttl}   busy: held by another id; pttl is the holder's remaining time
--               to live in ms, or -1 when the holder's key has no expiry
--   {2, pttl}   already held by this same id: AlreadyAcquired, or with
--               ARGV[3] "1" taken by this call (pttl is then the old one)
--
-- The fencing token of a grant is max(last token + 1, the server's TIME in
-- microseconds): it increases strictly with every grant of the name, and a
-- lost counter (DEL, eviction, expiry, FLUSHDB) restarts above every earlier
-- token as long as the server's clock does not step back. It stays far below
-- 2^53 (Lua numbers are doubles), so it is exact. Taken by this call again
-- (ARGV[3] "1"), the hold keeps the token its first copy minted.
local function mint()
    local now = redis.call('time')
    local token = tonumber(now[1]) * 1000000 + tonumber(now[2])
    local last = tonumber(redis.call('get', KEYS[3]) or '0') or 0
    if last >= token then
        token = last + 1
    end
    local text = string.format('%.0f', token)
    if tonumber(ARGV[4]) > 0 then
        redis.call('set', KEYS[3], text, 'PX', ARGV[4])
    else
        redis.call('set', KEYS[3], text)
    end
    return token
end

local px = tonumber(ARGV[2])
local ok
if px > 0 then
    ok = redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', px)
else
    ok = redis.call('set', KEYS[1], ARGV[1], 'NX')
end
if ok then
    redis.call('del', KEYS[2])
    if KEYS[3] then
        return {0, 0, mint()}
    end
    return {0, 0}
end
local pttl = redis.call('pttl', KEYS[1])
if redis.call('get', KEYS[1]) == ARGV[1] then
    if ARGV[3] == '1' then
        if px > 0 then
            redis.call('pexpire', KEYS[1], px)
        end
        if KEYS[3] then
            local token = tonumber(redis.call('get', KEYS[3]) or '')
            return {2, pttl, token or mint()}
        end
    end
    return {2, pttl}
end
return {1, pttl}
