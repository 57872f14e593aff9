-- KEYS: job, lease, running. ARGV: job_id
-- A lapsed job turns 'queued' but stays in the running set until its message is sent
-- (``requeued``), so a reaper that dies in between leaves it for the next round to send.
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'queued' then return 'requeue' end
if state ~= 'running' then redis.call('SREM', KEYS[3], ARGV[1]); return 'gone' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'alive' end
redis.call('HSET', KEYS[1], 'state', 'queued')
redis.call('HINCRBY', KEYS[1], 'requeues', 1)
redis.call('HDEL', KEYS[1], 'token')
return 'requeue'
