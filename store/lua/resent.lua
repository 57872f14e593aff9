-- KEYS: job. ARGV: events channel
-- Count a queued job's message sent again; a job that left the queue meanwhile is left be.
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then return 0 end
redis.call('HINCRBY', KEYS[1], 'requeues', 1)
redis.call('INCR', 'polyfit:stats:resent')
redis.call('PUBLISH', ARGV[1], 'requeued')
return 1
