--[[
  Applies one entity's feature-group updates from one source stream, atomically and at
  most once (compare-and-set on the stream's applied offset).

  KEYS[1]  the entity's group-state hash
  ARGV[1]  progress field of the stream, `_o:<topic>:<partition>`
  ARGV[2]  expected stored offset ('' when none is expected)
  ARGV[3]  new offset to store
  ARGV[4]  newest event time in the updates (epoch ms)
  ARGV[5]  ttl in ms, refreshed on every write
  ARGV[6]  now (epoch ms), to pace pruning
  ARGV[7]  P, the number of prune cutoffs that follow
  ARGV[8 .. 7+2P]  pairs: tile size ms, first tile start still read
  ARGV[8+2P ..]    triples: merge kind (a=add, n=min, x=max, l=last, v=moments), field, value
                   (`last` values are `<event time>|<encoded value>`; moments are
                   `<count>|<mean>|<sum of squared deviations>`, combined with Chan's formula)

  Returns {1} when applied, {0, stored offset or false} when the expected offset differs.
]]
local key = KEYS[1]
local stored = redis.call('HGET', key, ARGV[1])
local expected = ARGV[2]
if (stored or '') ~= expected then
  return {0, stored}
end

local pruneCount = tonumber(ARGV[7])
local first = 8 + 2 * pruneCount
for i = first, #ARGV, 3 do
  local kind, field, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if kind == 'a' then
    redis.call('HINCRBYFLOAT', key, field, value)
  else
    local current = redis.call('HGET', key, field)
    if not current then
      redis.call('HSET', key, field, value)
    elseif kind == 'n' then
      if tonumber(value) < tonumber(current) then redis.call('HSET', key, field, value) end
    elseif kind == 'x' then
      if tonumber(value) > tonumber(current) then redis.call('HSET', key, field, value) end
    elseif kind == 'l' then
      local newTime = tonumber(string.match(value, '^(-?%d+)|'))
      local oldTime = tonumber(string.match(current, '^(-?%d+)|'))
      if newTime >= oldTime then redis.call('HSET', key, field, value) end
    elseif kind == 'v' then
      local na, ma, qa = string.match(current, '^([^|]+)|([^|]+)|([^|]+)$')
      local nb, mb, qb = string.match(value, '^([^|]+)|([^|]+)|([^|]+)$')
      na, ma, qa, nb, mb, qb = tonumber(na), tonumber(ma), tonumber(qa), tonumber(nb), tonumber(mb), tonumber(qb)
      local n = na + nb
      local delta = mb - ma
      local mean = ma + delta * nb / n
      local m2 = qa + qb + delta * delta * na * nb / n
      redis.call('HSET', key, field, string.format('%.17g|%.17g|%.17g', n, mean, m2))
    end
  end
end

redis.call('HSET', key, ARGV[1], ARGV[3])
local newest = tonumber(redis.call('HGET', key, '_ts') or '-1e300')
if tonumber(ARGV[4]) > newest then redis.call('HSET', key, '_ts', ARGV[4]) end

-- Prune tiles no window can read any more, at most once a minute per entity.
local now = tonumber(ARGV[6])
local lastPrune = tonumber(redis.call('HGET', key, '_pr') or '0')
if pruneCount > 0 and now - lastPrune >= 60000 then
  local cutoffs = {}
  for i = 8, 7 + 2 * pruneCount, 2 do cutoffs[ARGV[i]] = tonumber(ARGV[i + 1]) end
  for _, field in ipairs(redis.call('HKEYS', key)) do
    local tile, start = string.match(field, '^(%d+):(-?%d+):')
    if tile and cutoffs[tile] and tonumber(start) < cutoffs[tile] then redis.call('HDEL', key, field) end
  end
  redis.call('HSET', key, '_pr', ARGV[6])
end

redis.call('PEXPIRE', key, ARGV[5])
return {1}
