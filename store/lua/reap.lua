-- KEYS: job, lease, running. ARGV: job_id, ttl_seconds (0: keep), events channel, now
-- A lapsed job turns 'queued' but stays in the running set until its message is sent
-- (``requeued``), so a reaper that dies in between leaves it for the next round to send.
-- A lapsed job whose cancel was asked for ends cancelled instead: run again, it would only
-- stop at its first check, on an attempt of its own.
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'queued' then return 'requeue' end
if state ~= 'running' then redis.call('SREM', KEYS[3], ARGV[1]); return 'gone' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'alive' end
if redis.call('HGET', KEYS[1], 'cancel') == '1' then
  set_state(KEYS[1], ARGV[1], 'cancelled')
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[4], 'error',
    cjson.encode({type='Cancelled', message='cancelled; its worker stopped answering ' ..
    'before it could stop the fit'}))
  redis.call('HDEL', KEYS[1], 'token')
  redis.call('SREM', KEYS[3], ARGV[1])
  expire(KEYS[1], ARGV[2], ARGV[4])
  redis.call('PUBLISH', ARGV[3], 'cancelled')
  return 'cancelled'
end
set_state(KEYS[1], ARGV[1], 'queued')
redis.call('INCR', 'polyfit:stats:requeues')
redis.call('HINCRBY', KEYS[1], 'requeues', 1)
redis.call('HDEL', KEYS[1], 'token')
return 'requeue'
