-- semaphore_query.lua: what a semaphore looks like now, on the server's clock.
--
-- KEYS[1]  permits key      (sem:<name>)
-- KEYS[2]  limit key        (sem-limit:<name>)
-- ARGV[1]  holder id        (the asking instance's: its own permit is reported)
-- ARGV[2]  "1" to list the holders' ids too
--
-- Returns an array {limit, count, own, id...}:
--   limit  the stored limit, or -1 when none is stored
--   count  the number of permits held (expired ones reclaimed first)
--   own    ARGV[1]'s permit: the ms left, -1 without expiry, -2 when it holds none
--   id...  with ARGV[2] "1", the holders' ids, earliest expiry first
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
local stored = tonumber(redis.call('get', KEYS[2]) or '-1') or -1
local own = -2
local held = redis.call('zscore', KEYS[1], ARGV[1])
if held == 'inf' or held == '+inf' then
    own = -1
elseif held then
    own = tonumber(held) - now
end
local reply = {stored, redis.call('zcard', KEYS[1]), own}
if ARGV[2] == '1' then
    for _, id in ipairs(redis.call('zrange', KEYS[1], 0, -1)) do
        reply[#reply + 1] = id
    end
end
return reply
