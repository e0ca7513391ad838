-- put_cursor.lua: fenced write of one folder's sync cursor.
--
-- A cursor is "<data>:<fence>": the source's opaque position (for IMAP
-- "uidvalidity:lastuid:lastdate"), then the fence in decimal. The write is
-- refused when the stored cursor of that folder carries a higher fence: a
-- former lease holder, paused or partitioned, must not move the cursor of the
-- node that holds the lease now. Equal or higher fences are written.
--
-- KEYS[1]  cursor hash of the mailbox (<prefix>cur:{<mailbox id>}), field = folder
-- ARGV[1]  folder name
-- ARGV[2]  encoded cursor
-- ARGV[3]  the writer's fence, canonical decimal (no sign, no leading zeros)
--
-- Returns {1, ARGV[3]} when written, {0, stored fence} when refused as stale.
--
-- Fences are uint64: compared as decimal strings (length, then bytes), because
-- Lua numbers are doubles and lose precision above 2^53.

local function less(a, b)
  if #a ~= #b then
    return #a < #b
  end
  return a < b
end

local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local stored = string.match(cur, ':(%d+)$')
  if stored then
    stored = string.gsub(stored, '^0+(%d)', '%1')
    if less(ARGV[3], stored) then
      return {0, stored}
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {1, ARGV[3]}
