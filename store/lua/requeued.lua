-- KEYS: job, running. ARGV: job_id
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then redis.call('SREM', KEYS[2], ARGV[1]) end
