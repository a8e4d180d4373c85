--[[
  Writes one entity's feature-group state from one source partition, atomically, unless
  a newer state of that partition is already stored (a writer that lost the partition).

  KEYS[1]  the entity's group-state hash
  ARGV[1]  progress field of the partition, `_o<partition>`
  ARGV[2]  highest source offset the state includes (decimal)
  ARGV[3]  ttl in ms, refreshed on every write
  ARGV[4]  S, the number of fields to set
  ARGV[5 .. 4+2S]  pairs: field, absolute value
  ARGV[5+2S ..]    fields to delete (pruned tiles)

  Returns {1} when written, {0, stored offset} when the stored offset is higher.
]]
local key = KEYS[1]
local stored = redis.call('HGET', key, ARGV[1])
if stored and tonumber(stored) > tonumber(ARGV[2]) then
  return {0, stored}
end
local count = tonumber(ARGV[4])
if count > 0 then
  redis.call('HSET', key, unpack(ARGV, 5, 4 + 2 * count))
end
if #ARGV >= 5 + 2 * count then
  redis.call('HDEL', key, unpack(ARGV, 5 + 2 * count, #ARGV))
end
redis.call('HSET', key, ARGV[1], ARGV[2])
redis.call('PEXPIRE', key, ARGV[3])
return {1}
