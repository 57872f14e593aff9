-- KEYS: job, lease, running. ARGV: job_id, token, lease_ms, now, worker, max_attempts,
-- events channel, ttl_seconds (0: keep). Returns {outcome, the stored request} (the request
-- only when claimed): the record is the request's only copy.
local function claim()
  local state = redis.call('HGET', KEYS[1], 'state')
  if not state then return 'missing' end
  if state ~= 'queued' and state ~= 'running' then return state end
  if state == 'running' and redis.call('EXISTS', KEYS[2]) == 1 then return 'leased' end
  local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
  if attempts >= tonumber(ARGV[6]) then
    set_state(KEYS[1], ARGV[1], 'failed')
    redis.call('HSET', KEYS[1], 'finished_at', ARGV[4], 'error',
      cjson.encode({type='WorkerLost', message='the worker running this job was lost ' ..
      attempts .. ' times; giving up'}))
    redis.call('SREM', KEYS[3], ARGV[1])
    expire(KEYS[1], ARGV[8], ARGV[4])
    return 'failed'
  end
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  set_state(KEYS[1], ARGV[1], 'running')
  redis.call('HSET', KEYS[1], 'token', ARGV[2], 'started_at', ARGV[4],
    'worker', ARGV[5], 'attempts', attempts + 1)
  redis.call('SADD', KEYS[3], ARGV[1])
  return 'claimed'
end
local outcome = claim()
redis.call('PUBLISH', ARGV[7], outcome)
if outcome ~= 'claimed' then return {outcome} end
return {outcome, redis.call('HGET', KEYS[1], 'request')}
