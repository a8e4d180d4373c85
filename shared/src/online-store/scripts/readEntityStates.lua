-- Reads entity hashes in one call (the reads of every request handled in one turn of the
-- event loop). KEYS: the hashes. Returns, per key, its fields and values as HGETALL does
-- (an empty array for a missing key), or for a key HGETALL refuses (not a hash: a foreign
-- value) the field "\0error" and Redis's error: that key alone is unreadable, not the call.
-- Writes nothing.
local states = {}
for i = 1, #KEYS do
  local reply = redis.pcall('HGETALL', KEYS[i])
  if type(reply) == 'table' and reply.err then
    states[i] = { '\0error', reply.err }
  else
    states[i] = reply
  end
end
return states
