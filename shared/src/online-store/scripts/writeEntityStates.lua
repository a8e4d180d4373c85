--[[
  writeEntityStates: writes several entities' feature-group states, each from one source
  partition, atomically per entity, in one call; an entity whose stored offset for that
  partition is higher than the written one (a writer that lost the partition) is left
  unchanged.

  KEYS[1..N]  the entities' group-state hashes
  ARGV, for each key in order:
    progress field `_o<partition>`, offset (decimal), ttl ms,
    S, then S pairs field/value to set,
    R, then R fields to delete

  Returns an array of N entries: 1 when written, the stored offset (a string) when the
  stored offset is higher (the write is refused, nothing of that entity changes), 0 when the
  key holds a value of another type (written by something else: left as it is, and the
  other keys of the call still written). A stored offset that is no number fences nothing.
]]
local results = {}
local a = 1
for i = 1, #KEYS do
  local key = KEYS[i]
  local progress, offset, ttl = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local sets = tonumber(ARGV[a + 3])
  local setFrom = a + 4
  local removes = tonumber(ARGV[setFrom + 2 * sets])
  local removeFrom = setFrom + 2 * sets + 1
  a = removeFrom + removes
  local stored = redis.pcall('HGET', key, progress)
  if type(stored) == 'table' and stored.err then
    results[i] = 0
  elseif (tonumber(stored) or -1) > tonumber(offset) then
    results[i] = stored
  else
    -- The offset with the fields: one call (unpack of an empty range adds nothing).
    redis.call('HSET', key, progress, offset, unpack(ARGV, setFrom, setFrom + 2 * sets - 1))
    if removes > 0 then redis.call('HDEL', key, unpack(ARGV, removeFrom, removeFrom + removes - 1)) end
    -- Never shortened: an earlier write may have given the key longer (an event timed ahead of the clock).
    if redis.call('PTTL', key) < tonumber(ttl) then redis.call('PEXPIRE', key, ttl) end
    results[i] = 1
  end
end
return results
