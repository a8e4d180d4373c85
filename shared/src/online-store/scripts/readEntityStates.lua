-- Reads entity hashes in one call (the reads of every request handled in one turn of the
-- event loop). KEYS: the hashes. Returns, per key, its fields and values as HGETALL does
-- (an empty array for a missing key). Writes nothing.
local states = {}
for i = 1, #KEYS do
  states[i] = redis.call('HGETALL', KEYS[i])
end
return states
