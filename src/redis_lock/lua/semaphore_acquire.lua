-- semaphore_acquire.lua: try to take one permit of a semaphore in one round trip.
--
-- KEYS[1]  permits key      (sem:<name>), a sorted set: member = holder id,
--          score = the permit's expiry in server-time ms ("inf": never expires)
-- KEYS[2]  signal key       (sem-signal:<name>), the waiters' wake-up list
-- KEYS[3]  limit key        (sem-limit:<name>), the stored limit
-- ARGV[1]  holder id        (a non-empty string)
-- ARGV[2]  expire in ms     ("0" means the permit never expires)
-- ARGV[3]  "1" if an "owned" reply means this call holds the permit (its id was
--          generated for the caller: see _core.owned_is_ours); the permit's
--          expiry is then set again, as a fresh grant would. "0": owned means
--          AlreadyAcquired.
-- ARGV[4]  the limit this caller was made with (an integer >= 1)
-- ARGV[5]  how long the stored limit outlives the last permit, in ms
-- ARGV[6]  signal expire in ms
-- ARGV[7]  "1" if this attempt follows a wake-up signal
--
-- Returns an array {code, value}:
--   {0, 0}       acquired
--   {1, ms}      busy: every permit is held; ms is the time left to the earliest
--                permit's expiry, or -1 when every permit is held without expiry
--   {2, ms}      this id holds a permit already: AlreadyAcquired, or with ARGV[3]
--                "1" taken by this call (ms is the old permit's time left, -1: none)
--   {3, limit}   the stored limit differs from ARGV[4] (LimitMismatch); nothing changed
--
-- Expired permits are reclaimed first (on the server's clock), so no counter can
-- drift from the holders. A grant that leaves permits free after a wake-up passes
-- the wake-up on (two releases may leave one signal, the list never holding more
-- than one); a grant that leaves none deletes a stale signal.
--
-- The key TTLs: the permits' key expires with its latest permit (no TTL while a
-- permit never expires); the limit key lives as long, and at least ARGV[5] ms
-- past the last grant or release. A grant can only make the latest permit later,
-- so it reads no permit back: the set it made (it was empty) gets the new permit's
-- TTL; a set with a TTL keeps it unless the new permit ends later (PTTL); a set
-- without one holds a permit that never expires (checked, as the rare paths are,
-- with ZRANGE). The limit is then written with one SET.
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[4])
local stored = redis.call('get', KEYS[3])
if stored and tonumber(stored) ~= limit then
    return {3, tonumber(stored) or -1}
end

local px = tonumber(ARGV[2])
local score = '+inf'
if px > 0 then
    score = now + px
end
local retention = tonumber(ARGV[5])

-- Both TTLs from the latest permit (the rare paths): the set's ends with it, the
-- limit's ARGV[5] ms later at the earliest; a permit without expiry keeps both.
local function retime()
    local last = redis.call('zrange', KEYS[1], -1, -1, 'WITHSCORES')
    if last[2] == 'inf' or last[2] == '+inf' then
        redis.call('persist', KEYS[1])
        redis.call('set', KEYS[3], ARGV[4])
    else
        local ttl = tonumber(last[2]) - now
        redis.call('pexpire', KEYS[1], ttl)
        redis.call('set', KEYS[3], ARGV[4], 'PX', math.max(ttl, retention))
    end
end

local count = redis.call('zcard', KEYS[1])
if count < limit and redis.call('zadd', KEYS[1], 'NX', score, ARGV[1]) == 1 then
    if px == 0 then
        if count > 0 then
            redis.call('persist', KEYS[1])
        end
        redis.call('set', KEYS[3], ARGV[4])
    elseif count == 0 then
        -- The set was empty: ZADD made its key, without TTL, and this permit is its latest.
        redis.call('pexpire', KEYS[1], px)
        redis.call('set', KEYS[3], ARGV[4], 'PX', math.max(px, retention))
    else
        -- The set's TTL ends with its latest permit: lengthen it only if this one is later.
        local ttl = redis.call('pttl', KEYS[1])
        if ttl < 0 then
            retime() -- no TTL: a permit never expires (retime checks, and heals a set without one)
        else
            if ttl < px then
                redis.call('pexpire', KEYS[1], px)
                ttl = px
            end
            redis.call('set', KEYS[3], ARGV[4], 'PX', math.max(ttl, retention))
        end
    end
    if count + 1 >= limit then
        redis.call('del', KEYS[2])
    elseif ARGV[7] == '1' then
        if redis.call('llen', KEYS[2]) == 0 then
            redis.call('lpush', KEYS[2], 1)
        end
        redis.call('pexpire', KEYS[2], ARGV[6])
    end
    return {0, 0}
end
local held = redis.call('zscore', KEYS[1], ARGV[1])
if held then
    local left = -1
    if held ~= 'inf' and held ~= '+inf' then
        left = tonumber(held) - now
    end
    if ARGV[3] == '1' then
        -- The permit's expiry is set again, and may move either way: retime from the latest.
        redis.call('zadd', KEYS[1], score, ARGV[1])
        retime()
    end
    return {2, left}
end
local first = redis.call('zrange', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] == 'inf' or first[2] == '+inf' then
    return {1, -1}
end
return {1, tonumber(first[2]) - now}
