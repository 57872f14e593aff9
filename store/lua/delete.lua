-- KEYS: job, lease, running, jobs. ARGV: job_id, events channel
-- Remove a job wherever it is recorded; returns the state it had, or 'missing'. A running
-- job's worker finds its lease gone at its next renewal and stops the fit; a queued job's
-- message finds nothing to claim.
local state, approach = unpack(redis.call('HMGET', KEYS[1], 'state', 'approach'))
if not state then return 'missing' end
if approach then redis.call('ZREM', INDEX .. state .. ':' .. approach, ARGV[1]) end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('PUBLISH', ARGV[2], 'deleted')
return state
