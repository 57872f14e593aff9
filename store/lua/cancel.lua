-- KEYS: job. ARGV: now, ttl_seconds
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if state == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', ARGV[1], 'cancel', '1',
    'error', cjson.encode({type='Cancelled', message='cancelled before it ran'}))
  if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
  return 'cancelled'
end
if state == 'running' then redis.call('HSET', KEYS[1], 'cancel', '1'); return 'requested' end
return 'already ' .. state
