//! The Lua scripts every owner-set change runs as, so that each change is one atomic step inside Redis: no
//! instance reads an owner set, changes it and writes it back. Each mutating script publishes the entry's new
//! state on the changes channel in the same step (see [`super::wire`]).
//!
//! Arguments shared by the mutating scripts: `KEYS[1]` the entry; `ARGV[1]` the changes channel, `ARGV[2]` the
//! origin instance, `ARGV[3]` the fingerprint in hex.

/// Publishes the entry's state (value and expiry), or that it is gone.
const PUBLISH: &str = r#"
local function publish(k)
  local v = redis.call('GET', k)
  local head = ARGV[2] .. ' ' .. ARGV[3] .. ' '
  if v then
    redis.call('PUBLISH', ARGV[1], head .. string.format('%d', redis.call('PEXPIRETIME', k)) .. ' ' .. v)
  else
    redis.call('PUBLISH', ARGV[1], head .. '0 ')
  end
end
"#;

/// Learn (BRIEF 2.1): `ARGV[4]` the fresh value (kind and owners), `ARGV[5]` the bytes of the key kinds,
/// `ARGV[6]` the expiry (unix ms), `ARGV[7]` `learn` or `reset`, `ARGV[8..]` the owners' indices. A live key
/// of the same kind gains the owners and keeps the later expiry; anything else (a token, another kind, a
/// `reset` after an approval) is replaced. Returns 0 inserted, 1 replaced, 2 owners added.
const LEARN: &str = r#"
local k = KEYS[1]
local fresh = ARGV[4]
local kind = string.sub(fresh, 1, 1)
local cur = redis.call('GETRANGE', k, 0, 0)
local outcome
if ARGV[7] ~= 'reset' and cur == kind and string.find(ARGV[5], kind, 1, true) then
  for i = 8, #ARGV do redis.call('SETBIT', k, 8 + tonumber(ARGV[i]), 1) end
  if redis.call('PEXPIRETIME', k) < tonumber(ARGV[6]) then redis.call('PEXPIREAT', k, ARGV[6]) end
  outcome = 2
else
  if cur == '' then outcome = 0 else outcome = 1 end
  redis.call('SET', k, fresh, 'PXAT', ARGV[6])
end
publish(k)
return outcome
"#;

/// Adds the owner `ARGV[4]` to an existing entry. Returns whether the entry exists.
const ADD_OWNER: &str = r#"
local k = KEYS[1]
if redis.call('EXISTS', k) == 0 then return 0 end
if redis.call('SETBIT', k, 8 + tonumber(ARGV[4]), 1) == 0 then publish(k) end
return 1
"#;

/// Removes the owner `ARGV[4]`; a token (kind not in `ARGV[5]`) left with no owner is deleted. Returns whether
/// the entry existed.
const REMOVE_OWNER: &str = r#"
local k = KEYS[1]
if redis.call('EXISTS', k) == 0 then return 0 end
if redis.call('SETBIT', k, 8 + tonumber(ARGV[4]), 0) == 1 then
  local kind = redis.call('GETRANGE', k, 0, 0)
  if not string.find(ARGV[5], kind, 1, true) and redis.call('BITCOUNT', k, 1, -1) == 0 then
    redis.call('DEL', k)
  end
  publish(k)
end
return 1
"#;

/// Reads entries (a read-through on local misses): for each of `KEYS`, its value (empty: absent) and expiry.
pub(super) const FETCH: &str = r#"
local out = {}
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v then
    out[#out + 1] = v
    out[#out + 1] = redis.call('PEXPIRETIME', k)
  else
    out[#out + 1] = ''
    out[#out + 1] = 0
  end
end
return out
"#;

/// Joins the shared table: `KEYS[1]` the key check, `KEYS[2]` the node map; `ARGV[1]` this instance's key
/// check value, `ARGV[2..]` pairs of node name and id. Records both where absent, then compares. Returns
/// `{verdict, detail}`: `new` (the key check was absent: an empty or restarted Redis), `ok`, `key` (another key
/// is recorded), `node` (a node name or id maps differently; detail: the name).
pub(super) const JOIN: &str = r#"
local fresh = redis.call('SET', KEYS[1], ARGV[1], 'NX')
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'key', ''} end
for i = 2, #ARGV, 2 do
  local name, id = ARGV[i], ARGV[i + 1]
  redis.call('HSETNX', KEYS[2], 'name:' .. name, id)
  redis.call('HSETNX', KEYS[2], 'id:' .. id, name)
  if redis.call('HGET', KEYS[2], 'name:' .. name) ~= id or redis.call('HGET', KEYS[2], 'id:' .. id) ~= name then
    return {'node', name}
  end
end
if fresh then return {'new', ''} end
return {'ok', ''}
"#;

/// The scripts, loaded once (`EVALSHA`, falling back to `EVAL` after a Redis restart).
#[derive(Debug)]
pub(super) struct Scripts {
    pub learn: redis::Script,
    pub add_owner: redis::Script,
    pub remove_owner: redis::Script,
    pub fetch: redis::Script,
    pub join: redis::Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        let with_publish = |body: &str| redis::Script::new(&format!("{PUBLISH}{body}"));
        Scripts {
            learn: with_publish(LEARN),
            add_owner: with_publish(ADD_OWNER),
            remove_owner: with_publish(REMOVE_OWNER),
            fetch: redis::Script::new(FETCH),
            join: redis::Script::new(JOIN),
        }
    }
}
