"""Key layout and server-side scripts of the Redis store (no redis import here).

Every decision that more than one process could race on runs as one Lua
script: it reads the connection's state, decides with the Redis server's clock
(``TIME``), writes the state and its TTL, and publishes the change, all in one
atomic step.  Replies are JSON text so they read the same whatever the
client's ``decode_responses`` setting.

Each write bumps a sequence number ``sq`` within an epoch ``ep`` (the server
time the state was created), records the writer ``w`` (and ``tw``, the writer
of the last transition) and refreshes the TTL,
so readers can drop replies and messages older than what they applied.

Layout, for prefix ``P``, scope ``S`` and identifier ``I``::

    P:{e(S)|e(I)}:s   hash, the shared state (field "v" is the schema version)
    P:{e(S)|e(I)}:l   sorted set, half-open trial leases (member token,
                      score = lease deadline in server milliseconds)
    P:events          pub/sub channel of every transition under the prefix

``e()`` percent-encodes every byte outside ``[A-Za-z0-9._~-]`` (so ``{``,
``}``, ``|``, ``:`` and ``%`` never appear raw); no scope is the empty
string, which a real scope can never be.  The braces make the pair one
Cluster hash tag, so both keys of a connection live in one slot.
"""

from __future__ import annotations

from urllib.parse import quote

SCHEMA_VERSION = 1


def encode_part(text: str) -> str:
    """Percent-encode text so that it holds only ``[A-Za-z0-9._~-%]``."""
    return quote(text, safe="")


def connection_tag(scope: str | None, identifier: str) -> str:
    """The hash-tag body naming one connection; unique per (scope, identifier)."""
    return f"{encode_part(scope or '')}|{encode_part(identifier)}"


def connection_keys(prefix: str, scope: str | None, identifier: str) -> list[str]:
    """The state key and the lease key of one connection, in one Cluster slot."""
    base = f"{prefix}:{{{connection_tag(scope, identifier)}}}"
    return [f"{base}:s", f"{base}:l"]


def events_channel(prefix: str) -> str:
    """The pub/sub channel carrying every transition under the prefix."""
    return f"{prefix}:events"


# KEYS[1] state hash, KEYS[2] lease set.
# ARGV[1] channel, [2] origin, [3] tag, [4] key TTL ms, [5] max_attempts,
# [6] strategy ("fixed"/"progressive"), [7] expiry ms, [8] initial ms,
# [9] max ms, [10] backoff factor, [11] lease TTL ms; op arguments from [12].
_PREAMBLE = """
local SK, LK = KEYS[1], KEYS[2]
local CHANNEL, ORIGIN, TAG = ARGV[1], ARGV[2], ARGV[3]
local KEY_TTL = tonumber(ARGV[4])
local MAX_ATTEMPTS = tonumber(ARGV[5])
local STRATEGY = ARGV[6]
local EXPIRY, INITIAL, MAXE = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local FACTOR, LEASE_TTL = tonumber(ARGV[10]), tonumber(ARGV[11])
local t = redis.call('TIME')
local NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function load()
  local raw = redis.call('HGETALL', SK)
  local h = {}
  for i = 1, #raw, 2 do h[raw[i]] = raw[i + 1] end
  if h.v ~= '__SCHEMA__' then
    return {st = 'closed', fc = 0, tr = 0, oa = 0, du = EXPIRY, g = 0,
            lf = -1, lr = '', ep = 0, sq = 0, w = '', tw = '', g0 = 0,
            missing = true}
  end
  return {st = h.st, fc = tonumber(h.fc), tr = tonumber(h.tr), oa = tonumber(h.oa),
          du = tonumber(h.du), g = tonumber(h.g), lf = tonumber(h.lf), lr = h.lr,
          ep = tonumber(h.ep), sq = tonumber(h.sq), w = h.w, tw = h.tw or '',
          g0 = tonumber(h.g)}
end

local function duration(trips)
  if STRATEGY ~= 'progressive' then return EXPIRY end
  if trips <= 1 then return math.min(INITIAL, MAXE) end
  local d = INITIAL * (FACTOR ^ (trips - 1))
  if d ~= d or d >= MAXE then return MAXE end
  return math.floor(d)
end

local function view(s, status)
  local age, rem = -1, -1
  if s.st ~= 'closed' then age = NOW - s.oa end
  if s.st == 'open' and s.du >= 0 then rem = math.max(0, s.oa + s.du - NOW) end
  local lf = -1
  if s.lf >= 0 then lf = NOW - s.lf end
  local m = 0
  if s.missing then m = 1 end
  return {s = status, st = s.st, fc = s.fc, tr = s.tr, age = age, du = s.du,
          g = s.g, rem = rem, lf = lf, lr = s.lr, k = TAG, o = ORIGIN,
          ep = s.ep, sq = s.sq, w = s.w, tw = s.tw, m = m, v = __SCHEMA__}
end

local function save(s)
  if s.missing then
    s.ep = NOW
    s.missing = false
  end
  s.sq = s.sq + 1
  s.w = ORIGIN
  if s.g ~= s.g0 then s.tw = ORIGIN end
  redis.call('HSET', SK, 'v', '__SCHEMA__', 'st', s.st, 'fc', s.fc, 'tr', s.tr,
             'oa', s.oa, 'du', s.du, 'g', s.g, 'lf', s.lf, 'lr', s.lr,
             'ep', s.ep, 'sq', s.sq, 'w', s.w, 'tw', s.tw)
  local ttl = KEY_TTL
  if s.st ~= 'closed' and s.du > 0 then ttl = ttl + s.du end
  redis.call('PEXPIRE', SK, ttl)
end

local function publish(s, event)
  local msg = view(s, event)
  redis.call('PUBLISH', CHANNEL, cjson.encode(msg))
end

local function trip(s)
  s.st = 'open'
  s.tr = s.tr + 1
  s.oa = NOW
  s.du = duration(s.tr)
  s.g = s.g + 1
  redis.call('DEL', LK)
end

local function lease_valid(token)
  local score = redis.call('ZSCORE', LK, token)
  return score and tonumber(score) > NOW
end
""".replace("__SCHEMA__", str(SCHEMA_VERSION))

# ARGV[12] kind: fail | ok | trial_ok | trial_fail | release; [13] token; [14] reason
OUTCOME = (
    _PREAMBLE
    + """
local kind, token, reason = ARGV[12], ARGV[13], ARGV[14]
local s = load()

if kind == 'release' then
  redis.call('ZREM', LK, token)
  return cjson.encode(view(s, 'released'))
end

if kind == 'fail' then
  s.lf = NOW
  s.lr = reason
  if s.st == 'closed' then
    s.fc = s.fc + 1
    if s.fc >= MAX_ATTEMPTS then
      trip(s)
      save(s)
      publish(s, 'opened')
      return cjson.encode(view(s, 'opened'))
    end
  elseif s.st == 'half_open' then
    trip(s)
    save(s)
    publish(s, 'opened')
    return cjson.encode(view(s, 'opened'))
  end
  save(s)
  publish(s, 'failure')
  return cjson.encode(view(s, 'failure'))
end

if kind == 'ok' then
  if s.st == 'closed' and s.fc > 0 then
    s.fc = 0
    save(s)
    publish(s, 'success')
    return cjson.encode(view(s, 'success'))
  end
  return cjson.encode(view(s, 'unchanged'))
end

if not lease_valid(token) or s.st ~= 'half_open' then
  redis.call('ZREM', LK, token)
  return cjson.encode(view(s, 'stale'))
end

if kind == 'trial_ok' then
  s.st = 'closed'
  s.fc = 0
  s.tr = 0
  s.g = s.g + 1
  redis.call('DEL', LK)
  save(s)
  publish(s, 'closed')
  return cjson.encode(view(s, 'closed'))
end

s.lf = NOW
s.lr = reason
trip(s)
save(s)
publish(s, 'opened')
return cjson.encode(view(s, 'opened'))
"""
)

# ARGV[12] token, [13] half_open_max_calls
ACQUIRE = (
    _PREAMBLE
    + """
local token, max_calls = ARGV[12], tonumber(ARGV[13])
local s = load()

if s.st == 'open' then
  if s.du < 0 or NOW < s.oa + s.du then
    return cjson.encode(view(s, 'open'))
  end
  s.st = 'half_open'
  s.g = s.g + 1
  redis.call('DEL', LK)
  save(s)
  publish(s, 'half_opened')
end

if s.st ~= 'half_open' then
  return cjson.encode(view(s, 'closed'))
end

redis.call('ZREMRANGEBYSCORE', LK, '-inf', NOW)
if redis.call('ZCARD', LK) >= max_calls then
  return cjson.encode(view(s, 'busy'))
end
redis.call('ZADD', LK, NOW + LEASE_TTL, token)
redis.call('PEXPIRE', LK, 2 * LEASE_TTL + 1000)
redis.call('PEXPIRE', SK, KEY_TTL + math.max(s.du, 0))
return cjson.encode(view(s, 'granted'))
"""
)

# ARGV[12] event, [13] state, [14] failure count, [15] trips, [16] age of
# opened_at in ms (-1 when not open), [17] duration ms (-1 = expiry disabled),
# [18] reason.  Writes the state a manual control decided and publishes it.
PUT = (
    _PREAMBLE
    + """
local event, st = ARGV[12], ARGV[13]
local s = load()
local prev = s.st
s.st = st
s.fc = tonumber(ARGV[14])
s.tr = tonumber(ARGV[15])
local age = tonumber(ARGV[16])
if st ~= 'closed' and age >= 0 then s.oa = NOW - age end
s.du = tonumber(ARGV[17])
if ARGV[18] ~= '' then s.lr = ARGV[18] end
s.g = s.g + 1
if prev ~= st or st ~= 'half_open' then redis.call('DEL', LK) end
save(s)
publish(s, event)
return cjson.encode(view(s, event))
"""
)

# ARGV[12] local state, [13] failure count, [14] trips, [15] age of opened_at
# in ms (-1 when not open), [16] duration ms.  Reconciles a process's local
# view with the shared one: open wins, the latest opened_at wins, a half-open
# circuit is not closed by a shared state that was lost, failure counts merge
# by maximum.  [17] "push" when the process decided things on its own while
# Redis was unreachable; otherwise its view is only a mirror and is written
# only if the shared state was lost (a plain read else), so a stale mirror
# never overrides a newer shared decision.  An all-closed local view with no
# failures is a plain read that writes nothing.
SYNC = (
    _PREAMBLE
    + """
local lst = ARGV[12]
local lfc, ltr = tonumber(ARGV[13]), tonumber(ARGV[14])
local lage, ldu = tonumber(ARGV[15]), tonumber(ARGV[16])
local s = load()
if ARGV[17] ~= 'push' and not s.missing then
  return cjson.encode(view(s, 'current'))
end

if lst == 'open' and lage >= 0 then
  local loa = NOW - lage
  if s.st ~= 'open' or loa > s.oa then
    s.st = 'open'
    s.oa = loa
    s.du = ldu
    s.tr = math.max(s.tr, ltr)
    s.fc = math.max(s.fc, lfc)
    s.g = s.g + 1
    redis.call('DEL', LK)
    save(s)
    publish(s, 'opened')
    return cjson.encode(view(s, 'opened'))
  end
elseif lst == 'half_open' and lage >= 0 and s.st == 'closed' then
  s.st = 'half_open'
  s.oa = NOW - lage
  s.du = ldu
  s.tr = math.max(s.tr, ltr)
  s.fc = math.max(s.fc, lfc)
  s.g = s.g + 1
  redis.call('DEL', LK)
  save(s)
  publish(s, 'half_opened')
  return cjson.encode(view(s, 'half_opened'))
elseif s.st == 'closed' and lfc > s.fc then
  s.fc = lfc
  save(s)
  publish(s, 'failure')
  return cjson.encode(view(s, 'failure'))
end

return cjson.encode(view(s, 'current'))
"""
)

SCRIPTS = {"outcome": OUTCOME, "acquire": ACQUIRE, "put": PUT, "sync": SYNC}
