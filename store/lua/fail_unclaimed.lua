-- KEYS: job. ARGV: now, error (JSON), ttl_seconds (0: keep), events channel, job_id
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then return 0 end
set_state(KEYS[1], ARGV[5], 'failed')
redis.call('HSET', KEYS[1], 'finished_at', ARGV[1], 'error', ARGV[2])
expire(KEYS[1], ARGV[3], ARGV[1])
redis.call('PUBLISH', ARGV[4], 'failed')
return 1
