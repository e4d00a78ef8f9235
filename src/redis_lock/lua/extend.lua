-- extend.lua: reset the expiry of a lock this id holds.
--
-- KEYS[1]  lock key         (lock:<name>)
-- ARGV[1]  owner id
-- ARGV[2]  new expire in ms (a positive integer)
--
-- Returns:
--   0  extended
--   1  not held by this id (NotAcquired)
--   2  held by this id but the key has no expiry (NotExpirable)
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return 1
end
if redis.call('pttl', KEYS[1]) < 0 then
    return 2
end
redis.call('pexpire', KEYS[1], ARGV[2])
return 0
