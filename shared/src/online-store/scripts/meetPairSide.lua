-- One side of a pair meets the other, atomically (a stream-stream join whose two sides may be
-- handled by two processes at once: neither can miss the other). KEYS[1]: this side, KEYS[2]:
-- the other (one hash tag: one slot). ARGV[1]: this side's value, ARGV[2]: its ttl in ms,
-- ARGV[3]: '1' to keep it even when the other side is there. Returns the other side's value,
-- or false when it is not there (nor when its key holds another type: written by something else).
local other = redis.pcall('GET', KEYS[2])
if type(other) == 'table' and other.err then other = false end
if other == false or ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return other
