--[[
  writePartitionStates: writes several entities' states from one source partition, each the
  same single field at the same offset (what a flush of the pipeline writes), in one call:
  writeEntityStates with the arguments the entities share given once. The TTL is the
  entity's group's, so it is given per key (a flush alternates groups).

  KEYS[1..N]      the entities' group-state hashes
  ARGV[1]         progress field `_o<partition>`
  ARGV[2]         offset (decimal)
  ARGV[3]         state field `s<partition>`
  ARGV[2 + 2i]    ttl ms of KEYS[i]
  ARGV[3 + 2i]    the state of KEYS[i]

  Returns an array of N entries: 1 when written, the stored offset (a string) when the
  stored offset is higher (the write is refused, nothing of that entity changes), 0 when the
  key holds a value of another type (written by something else: left as it is, and the
  other keys of the call still written). A stored offset that is no number fences nothing.
]]
local progress, offset, field = ARGV[1], ARGV[2], ARGV[3]
local limit = tonumber(offset)
local results = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local stored = redis.pcall('HGET', key, progress)
  if type(stored) == 'table' and stored.err then
    results[i] = 0
  elseif (tonumber(stored) or -1) > limit then
    results[i] = stored
  else
    redis.call('HSET', key, progress, offset, field, ARGV[3 + 2 * i])
    -- Never shortened: an earlier write may have given the key longer (an event timed ahead of the clock).
    local ttl = tonumber(ARGV[2 + 2 * i])
    if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
    results[i] = 1
  end
end
return results
