-- Functions every script is prefixed with (scripts.py): the two writes that must go with
-- every change of a job's state. ARGV and KEYS are those of the script that calls them.
local INDEX = 'polyfit:index:'
local FINISHED = {succeeded = true, failed = true, cancelled = true}

-- Set a job's state and move it to that state's index (keys.py: polyfit:index:…).
local function set_state(key, job_id, state)
  local old, approach, submitted = unpack(redis.call('HMGET', key, 'state', 'approach',
    'submitted_at'))
  redis.call('HSET', key, 'state', state)
  if approach then
    if old then redis.call('ZREM', INDEX .. old .. ':' .. approach, job_id) end
    redis.call('ZADD', INDEX .. state .. ':' .. approach, submitted or 0, job_id)
    if FINISHED[state] then
      redis.call('HINCRBY', 'polyfit:stats:finished', state .. ':' .. approach, 1)
    end
  end
end

-- Give a finished record its TTL (0: keep it) and say when it ends.
local function expire(key, ttl, now)
  if tonumber(ttl) > 0 then
    redis.call('EXPIRE', key, ttl)
    redis.call('HSET', key, 'expires_at', tonumber(now) + tonumber(ttl))
  end
end
