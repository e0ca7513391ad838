-- release.lua: give a mailbox lease back so that another node can obtain it at
-- once (hand-off), but only while it is still ours.
--
-- KEYS[1]  lease key  <prefix>lease:{<id>}
-- ARGV[1]  expected value "<node>|<fence>"
--
-- Returns 1 when deleted, 0 when the key is gone or holds another value (then
-- there is nothing of ours to give back).

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
