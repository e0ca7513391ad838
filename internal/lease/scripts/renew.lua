-- renew.lua: extend a held mailbox lease; run in batches (one pipeline per round).
--
-- KEYS[1]  lease key  <prefix>lease:{<id>}
-- KEYS[2]  fence key  <prefix>fence:{<id>}  (read only when ARGV[4] = "1")
-- ARGV[1]  expected value "<node>|<fence>"
-- ARGV[2]  TTL in milliseconds
-- ARGV[3]  the lease's fence
-- ARGV[4]  "1": restore a vanished lease key (see below); "0": report it missing
--
-- Returns:
--    1  renewed (PEXPIRE)
--    2  restored: the key was gone but no newer fence was issued since, so the
--       lease was re-created unchanged (only with ARGV[4] = "1")
--    0  missing: the key is gone (expired, deleted, Redis lost its data)
--   -1  taken: the key holds another value (another node or a newer fence)
--
-- Restoring is safe because the fence key records every obtain: a counter that
-- is still <= our fence proves nobody obtained the lease after us. It lets the
-- holder survive a Redis restart or failover without churn; the counter is
-- raised to our fence so that later obtains issue higher ones.

local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if cur then
  return -1
end
if ARGV[4] ~= '1' then
  return 0
end
local fence = tonumber(ARGV[3])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if last > fence then
  return 0
end
if last < fence then
  redis.call('SET', KEYS[2], ARGV[3])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 2
