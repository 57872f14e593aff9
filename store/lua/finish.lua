-- KEYS: job, lease, running. ARGV: job_id, token, ttl_seconds (0: keep), events channel,
-- final state, finished_at, then more field/value pairs
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
set_state(KEYS[1], ARGV[1], ARGV[5])
redis.call('HSET', KEYS[1], 'finished_at', ARGV[6])
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
expire(KEYS[1], ARGV[3], ARGV[6])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
