-- obtain.lua: take a mailbox lease if it is free, expired, or held by this very
-- node id (a restarted process of the same node), and issue a new fence.
--
-- KEYS[1]  lease key  <prefix>lease:{<id>}  value "<node>|<fence>", PX = TTL
-- KEYS[2]  fence key  <prefix>fence:{<id>}  last fence issued for <id> (no TTL)
-- ARGV[1]  node id (never contains "|")
-- ARGV[2]  TTL in milliseconds
--
-- Returns {fence, holder, pttl}:
--   fence > 0  obtained; holder is the new value "<node>|<fence>", pttl = ARGV[2]
--   fence = 0  held by another node; holder is its value, pttl its remaining TTL (ms)
--
-- The fence is max(last + 1, server time in ms). The counter alone is monotonic
-- while Redis keeps its data; the time floor keeps fences increasing across a
-- lost or rolled-back counter too (restart without persistence, failover to a
-- replica that missed the last writes), as long as fewer than one lease per
-- millisecond was issued for this id, which holds by a wide margin.

-- Redis < 5 replicates scripts verbatim and refuses writes after TIME; from 5 on
-- this is the default and the call is a no-op.
if redis.replicate_commands then redis.replicate_commands() end

local cur = redis.call('GET', KEYS[1])
if cur then
  local holder = string.match(cur, '^(.*)|')
  if holder ~= ARGV[1] then
    return {0, cur, redis.call('PTTL', KEYS[1])}
  end
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fence = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
if fence < now then fence = now end
local fs = string.format('%d', fence)
redis.call('SET', KEYS[2], fs)
local value = ARGV[1] .. '|' .. fs
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return {fence, value, tonumber(ARGV[2])}
