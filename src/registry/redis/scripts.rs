//! The Lua scripts of the Redis registry: every check-and-set is one script, so two
//! instances never both get a lease, and an outcome is written only while its lease holds.
//! They are compiled once and sent by hash (loaded again after a Redis restart).

use redis::Script;

/// Wake: take the app's lock unless it is awake already; announce `waking`.
pub(super) const CLAIM_WAKE: &str = r"
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'awake' and redis.call('EXISTS', KEYS[2]) == 0 then
  return {'awake', tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')}
end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'busy', 0}
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'state', 'waking', 'since', ARGV[3], 'by', ARGV[4])
redis.call('HDEL', KEYS[1], 'reason')
redis.call('PUBLISH', ARGV[5], cjson.encode({k = {ARGV[6], ARGV[7], ARGV[8]}, s = 'waking', q = seq, b = ARGV[4]}))
return {'granted', seq}
";

/// Stop: refused when an instance saw activity after the idle limit; else take the lock and
/// announce `stopping`.
pub(super) const CLAIM_STOP: &str = r"
local activity = tonumber(redis.call('HGET', KEYS[1], 'activity') or '0')
if activity > tonumber(ARGV[9]) then
  return {'active', activity}
end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'busy', 0}
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'state', 'stopping', 'since', ARGV[3], 'by', ARGV[4])
redis.call('PUBLISH', ARGV[5], cjson.encode({k = {ARGV[6], ARGV[7], ARGV[8]}, s = 'stopping', q = seq, b = ARGV[4]}))
return {'granted', seq}
";

/// Records a state (and activity, max semantics), releases the lock if this token holds
/// it, announces the change. With a token (the outcome of a wake or stop), only while that
/// token still holds the lock, or while nobody took it or changed the app since it lapsed
/// (the change counter is still the one of the claim, `ARGV[11]`); else nothing is written
/// and the answer is `lost`.
pub(super) const SET_STATE: &str = r"
if ARGV[1] ~= '' then
  local holder = redis.call('GET', KEYS[2])
  if holder ~= ARGV[1] then
    local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
    if holder or seq ~= tonumber(ARGV[11]) then
      return {'lost', seq}
    end
  end
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'since', ARGV[4], 'by', ARGV[5])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'reason', ARGV[3])
else
  redis.call('HDEL', KEYS[1], 'reason')
end
local activity = tonumber(ARGV[10])
if activity > 0 and activity > tonumber(redis.call('HGET', KEYS[1], 'activity') or '0') then
  redis.call('HSET', KEYS[1], 'activity', ARGV[10])
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[6], cjson.encode({k = {ARGV[7], ARGV[8], ARGV[9]}, s = ARGV[2], q = seq, r = ARGV[3], b = ARGV[5]}))
return {'written', seq}
";

/// Extends a lease held by this token.
pub(super) const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Deletes a lease held by this token.
pub(super) const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Merges activities (max semantics) and reads every app's shared state; first the epoch.
pub(super) const SYNC: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
local out = {redis.call('GET', KEYS[1])}
for i = 2, #KEYS do
  local activity = tonumber(ARGV[i])
  if activity > 0 and activity > tonumber(redis.call('HGET', KEYS[i], 'activity') or '0') then
    redis.call('HSET', KEYS[i], 'activity', ARGV[i])
  end
  local v = redis.call('HMGET', KEYS[i], 'state', 'seq', 'activity', 'reason', 'pin')
  out[#out + 1] = v[1] or ''
  out[#out + 1] = v[2] or '0'
  out[#out + 1] = v[3] or '0'
  out[#out + 1] = v[4] or ''
  out[#out + 1] = v[5] or '0'
end
return out
";

/// The compiled scripts (sent by hash; loaded again after a Redis restart).
pub(super) struct Scripts {
    pub(super) claim_wake: Script,
    pub(super) claim_stop: Script,
    pub(super) set_state: Script,
    pub(super) renew: Script,
    pub(super) release: Script,
    pub(super) sync: Script,
}
