-- KEYS: job. ARGV: now, ttl_seconds, job_id
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if state == 'queued' then
  set_state(KEYS[1], ARGV[3], 'cancelled')
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[1], 'cancel', '1',
    'error', cjson.encode({type='Cancelled', message='cancelled before it ran'}))
  expire(KEYS[1], ARGV[2], ARGV[1])
  return 'cancelled'
end
if state == 'running' then redis.call('HSET', KEYS[1], 'cancel', '1'); return 'requested' end
return 'already ' .. state
