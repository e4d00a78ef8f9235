-- fair.lua: fair mode (Lock(fair=True)): a FIFO queue of waiters with leases on
-- server time, and a release that hands the lock straight to the next waiter.
--
-- KEYS[1]  lock key         (lock:<name>), holds the owner id
-- KEYS[2]  signal key       (lock-signal:<name>), the non-fair waiters' wake-up list
-- KEYS[3]  queue key        (lock-queue:<name>), a sorted set: member = a waiting
--          call's token, score = its ticket (arrival order)
-- KEYS[4]  waiters key      (lock-queued:<name>), a hash: field = token, value =
--          "<lease end ms>|<expire ms>|<fence ttl ms or ->|<owner id>"; and the
--          field "" (the hand-off marker) = "<deadline ms>|<token>|<owner id>"
--          while the lock is held by a waiter it was handed to
-- KEYS[5]  fence key        (lock-fence:<name>), the name's fencing counter
-- KEYS[6]  receipt key      (lock-released:<name>), for op "r"
-- ARGV[1]  op: "a" acquire (take the lock, or queue and refresh this call's
--          lease), "g" acquire or give up (take it, else leave the queue: a
--          non-blocking call, or the last try at a timeout), "c" cancel (leave
--          the queue; a lock handed to this call is handed on), "r" release
-- ARGV[2]  owner id
-- ARGV[3]  this call's token (a-z0-9, unique per acquire call); for "r" unused
-- ARGV[4]  the wake list prefix: a call's wake list is ARGV[4] .. token
--          (lock-wake:<name>:<token>, in the lock's hash slot)
-- ARGV[5]  signal expire in ms
-- ops a, g, c:
-- ARGV[6]  expire in ms ("0": the lock never expires)
-- ARGV[7]  "1" if the lock held by this id (with no hand-off marker) means this
--          call holds it (see acquire.lua)
-- ARGV[8]  the queue lease in ms: a waiter that did not refresh its place for
--          this long is skipped (its process died)
-- ARGV[9]  the fence key's expire in ms ("0": for ever), or "-" without fencing
-- op r:
-- ARGV[6]  this release call's nonce, ARGV[7] the receipt's expire in ms
--
-- Returns:
--   a, g:  {0, 0[, token]}   acquired (by this call, or handed to it earlier)
--          {1, pttl, position, hint}  busy: queued at position (1: next), or
--                            with g, gave up (position 0). hint: ms until this
--                            waiter should look again (the holder's key or a
--                            hand-off deadline runs out), -1 for none
--          {2, pttl[, token]}  held by this id already (see acquire.lua)
--   c:     1 the lock had been handed to this call: handed on; 0 left the queue
--   r:     0 released (handed to the next waiter, or the signal pushed);
--          1 not held by this id; 2 released by an earlier copy of this call
--
-- Time is the server's (TIME), never a client's. A waiter's wake list gets
-- "h" (or "h<fencing token>") when the lock is handed to it, "r" on a reset.
-- The wake lists are not declared in KEYS: they share the lock's hash slot.
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]

local function wake_key(token)
    return ARGV[4] .. token
end

local function entry(token)
    local value = redis.call('hget', KEYS[4], token)
    if not value then
        return nil
    end
    local lease, expire, fence, id = string.match(value, '^(%d+)|(%d+)|([%d%-]+)|(.*)$')
    return {lease = tonumber(lease), expire = expire, fence = fence, id = id}
end

local function drop(token)
    redis.call('zrem', KEYS[3], token)
    redis.call('hdel', KEYS[4], token)
    redis.call('del', wake_key(token))
end

-- Keep a key for at least ms more (never shorten a longer expiry).
local function keep(key, ms)
    local pttl = redis.call('pttl', key)
    if pttl == -2 then
        return
    end
    if pttl == -1 or pttl < ms then
        redis.call('pexpire', key, ms)
    end
end

local function mint(fence_ttl)
    local token = now * 1000 + tonumber(t[2]) % 1000
    local last = tonumber(redis.call('get', KEYS[5]) or '0') or 0
    if last >= token then
        token = last + 1
    end
    local text = string.format('%.0f', token)
    if tonumber(fence_ttl) > 0 then
        redis.call('set', KEYS[5], text, 'PX', fence_ttl)
    else
        redis.call('set', KEYS[5], text)
    end
    return token
end

local function set_lock(id, expire)
    if tonumber(expire) > 0 then
        redis.call('set', KEYS[1], id, 'PX', expire)
    else
        redis.call('set', KEYS[1], id)
    end
end

local function marker()
    local value = redis.call('hget', KEYS[4], '')
    if not value then
        return nil
    end
    local deadline, token, id = string.match(value, '^(%d+)|([^|]*)|(.*)$')
    return {deadline = tonumber(deadline), token = token, id = id}
end

-- The lock is free: hand it to the first waiter whose lease is live (dead ones
-- are dropped). Returns true if handed, false if nobody waits.
local function hand_next()
    while true do
        local head = redis.call('zrange', KEYS[3], 0, 0)[1]
        if not head then
            redis.call('hdel', KEYS[4], '')
            return false
        end
        local e = entry(head)
        drop(head)
        if e and e.lease > now then
            set_lock(e.id, e.expire)
            local value = 'h'
            if e.fence ~= '-' then
                value = 'h' .. string.format('%.0f', mint(e.fence))
            end
            -- Accepted once its wake list is popped (or its own script sees the
            -- marker); until e.lease, when a dead waiter's hand-off is void.
            redis.call('hset', KEYS[4], '', e.lease .. '|' .. head .. '|' .. e.id)
            keep(KEYS[4], e.lease - now + 1000)
            local wake = wake_key(head)
            redis.call('del', wake)
            redis.call('rpush', wake, value)
            if tonumber(e.expire) > 0 then
                redis.call('pexpire', wake, math.max(tonumber(e.expire), e.lease - now) + 1000)
            end
            return true
        end
    end
end

local function signal_others()
    redis.call('del', KEYS[2])
    redis.call('lpush', KEYS[2], 1)
    redis.call('pexpire', KEYS[2], ARGV[5])
end

-- Settle an earlier hand-off: forget it once the lock is no longer the handed
-- waiter's; void it when that waiter did not take it by its deadline (dead).
-- Returns the holder's id (false: free) and the pending hand-off (nil: none).
local function settle()
    local holder = redis.call('get', KEYS[1])
    local m = marker()
    if not m then
        return holder, nil
    end
    if holder ~= m.id then
        redis.call('hdel', KEYS[4], '')
        redis.call('del', wake_key(m.token))
        return holder, nil
    end
    if now >= m.deadline and redis.call('exists', wake_key(m.token)) == 1 then
        redis.call('hdel', KEYS[4], '')
        redis.call('del', wake_key(m.token))
        redis.call('del', KEYS[1])
        return false, nil
    end
    return holder, m
end

local holder, m = settle()
local id, token = ARGV[2], ARGV[3]
local mine = m and holder == id and m.token == token

if op == 'r' then
    if holder ~= id then
        if redis.call('get', KEYS[6]) == ARGV[6] then
            return 2
        end
        return 1
    end
    redis.call('del', KEYS[1])
    if m then
        -- Released (by an object sharing the id) before the call it was handed to
        -- popped it: that call must not find the hand-off later.
        redis.call('del', wake_key(m.token))
    end
    redis.call('hdel', KEYS[4], '')
    if not hand_next() then
        signal_others()
    end
    redis.call('set', KEYS[6], ARGV[6], 'PX', ARGV[7])
    return 0
end

if op == 'c' then
    if mine then
        redis.call('del', KEYS[1])
        redis.call('hdel', KEYS[4], '')
        drop(token)
        if not hand_next() then
            signal_others()
        end
        return 1
    end
    drop(token)
    return 0
end

-- ops a and g
local expire, fence_ttl = ARGV[6], ARGV[9]
local function granted()
    if fence_ttl == '-' then
        return {0, 0}
    end
    return {0, 0, mint(fence_ttl)}
end

if mine then
    -- Handed to this call (its wake list not popped yet, or popped and lost).
    drop(token)
    if tonumber(expire) > 0 then
        redis.call('pexpire', KEYS[1], expire)
    end
    if fence_ttl == '-' then
        return {0, 0}
    end
    return {0, 0, tonumber(redis.call('get', KEYS[5]) or '') or mint(fence_ttl)}
end

if holder == id and not m then
    local pttl = redis.call('pttl', KEYS[1])
    if ARGV[7] == '1' then
        drop(token)
        if tonumber(expire) > 0 then
            redis.call('pexpire', KEYS[1], expire)
        end
        if fence_ttl ~= '-' then
            return {2, pttl, tonumber(redis.call('get', KEYS[5]) or '') or mint(fence_ttl)}
        end
    end
    return {2, pttl}
end

if not holder then
    -- Free: the first live waiter gets it, which may be this call.
    while true do
        local head = redis.call('zrange', KEYS[3], 0, 0)[1]
        if not head or head == token then
            drop(token)
            set_lock(id, expire)
            redis.call('del', KEYS[2])
            return granted()
        end
        local e = entry(head)
        if e and e.lease > now then
            hand_next()
            break
        end
        drop(head)
    end
end

local pttl = redis.call('pttl', KEYS[1])
if op == 'g' then
    drop(token)
    return {1, pttl, 0, -1}
end
local lease = now + tonumber(ARGV[8])
if not redis.call('zscore', KEYS[3], token) then
    local last = redis.call('zrange', KEYS[3], -1, -1, 'WITHSCORES')
    local ticket = 1
    if last[2] then
        ticket = tonumber(last[2]) + 1
    end
    redis.call('zadd', KEYS[3], ticket, token)
end
redis.call('hset', KEYS[4], token, lease .. '|' .. expire .. '|' .. fence_ttl .. '|' .. id)
keep(KEYS[3], tonumber(ARGV[8]) + 1000)
keep(KEYS[4], tonumber(ARGV[8]) + 1000)
local rank = redis.call('zrank', KEYS[3], token)
local hint = -1
if rank == 0 then
    hint = pttl
    m = marker()
    if m and redis.call('exists', wake_key(m.token)) == 1 then
        local left = math.max(0, m.deadline - now)
        if hint < 0 or left < hint then
            hint = left
        end
    end
elseif rank == 1 then
    local e = entry(redis.call('zrange', KEYS[3], 0, 0)[1])
    if e then
        hint = math.max(0, e.lease - now)
    end
end
return {1, pttl, rank + 1, hint}
