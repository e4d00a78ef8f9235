-- fenced_set.lua: store a resource's value if the writer's fencing token is not
-- older than the last token accepted for the resource (redis_lock.fencing).
--
-- KEYS[1]  guard key        (fenced:<resource>), a hash: field "token" holds the
--          last accepted token (a decimal string), field "value" the value
--          written with it
-- ARGV[1]  the writer's fencing token (a decimal integer, 0 < token < 2^53)
-- ARGV[2]  the value to store (any bytes)
--
-- Returns an array {code, token}:
--   {1, token}  accepted: ARGV[1] is not below the last accepted token (equal
--               is accepted: one holder may write several times); the value
--               and ARGV[1] are stored, and token is ARGV[1]
--   {0, last}   refused: ARGV[1] is below last, the last accepted token;
--               nothing was changed
--
-- Tokens are below 2^53 and Lua numbers are doubles, so tonumber() and the
-- comparison are exact. The token is stored as the caller's decimal string.
local token = tonumber(ARGV[1])
if not token then
    return redis.error_reply('ERR fenced_set: the token is not a number')
end
local stored = redis.call('hget', KEYS[1], 'token')
if stored then
    local last = tonumber(stored)
    if not last then
        return redis.error_reply('ERR fenced_set: the guard key holds no valid token')
    end
    if token < last then
        return {0, last}
    end
end
redis.call('hset', KEYS[1], 'token', ARGV[1], 'value', ARGV[2])
return {1, token}
