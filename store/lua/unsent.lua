-- KEYS: a queue's lists in Celery's Redis transport (the queue, then its priority lists),
-- then the transport's 'unacked' hash (messages a worker holds). ARGV: message ids (a job's,
-- or its sweep's) to look for. Returns the ids that no message there carries. A message is
-- kombu's JSON, whose first "id" field is its task id (headers.id; the body is base64).
local present = {}
local function note(message)
  local id = string.match(message, '"id": ?"([^"]+)"')
  if id then present[id] = true end
end
for i = 1, #KEYS - 1 do
  local length = redis.call('LLEN', KEYS[i])
  for start = 0, length - 1, 500 do
    for _, message in ipairs(redis.call('LRANGE', KEYS[i], start, start + 499)) do
      note(message)
    end
  end
end
for _, held in ipairs(redis.call('HVALS', KEYS[#KEYS])) do note(held) end
local missing = {}
for _, id in ipairs(ARGV) do
  if not present[id] then table.insert(missing, id) end
end
return missing
