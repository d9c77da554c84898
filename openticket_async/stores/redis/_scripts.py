"""The Lua scripts RedisStore runs: each is one atomic step on the shared state.

Keys (``P`` is the store's prefix followed, when the store is split into shards
(:mod:`._keys`), by the shard's hash tag ``{n}``: every key of one shard then
hashes to one Redis Cluster slot; the pace keys are never tagged)::

    P queue           sorted set: member "<16 hex seq>:<hold id>", score = due
    P seq             counter of writes (saves, claims, ends): the seq above, so equal due
                      times keep save order; it only grows, so a store that saw a larger
                      one acknowledged knows Redis lost writes (a failover, an old snapshot)
    P epoch           random marker; missing or changed means Redis lost its data
    P restoring       end of the restore window after a data loss (fleet clock)
    P hold:<id>       hash: fence, owner, lease, action, due, member, data (JSON),
                      or a tombstone {ended, fence} once the hold reached its end
    P cart:<id>       sorted set: the cart's live hold ids, score = seq of first save
    P checkout:<id>   hash: the cart's checkout claim: owner, fence, until (its lease end)
    P events:<id>     stream: the cart's hold events
    P shards          the shard count the stores on this prefix use (in shard 0)
    P pace:<shop>     hash: the shop's next free call slot, and its backoff end after a 429
                      (untagged: its scripts touch it alone, so it is a slot of its own)

Every time in Redis (scores, due times, leases, a record's deadline) is epoch
seconds on the *fleet clock* (:mod:`._time`): Redis's own ``TIME`` when the
store runs on real time, the caller's virtual wall time otherwise (the scripts'
``lease now`` argument; empty means ``TIME``). Leases are set and checked with
it inside the scripts; due times arrive already shifted onto it.

Hash fields of a live hold:

- ``fence``: counted up by every claim; a write-back with a smaller one is stale.
- ``owner``/``lease``: the store that claimed (or keeps renewing) the hold, and
  until when that claim protects it (0 when nobody protects it). A claim
  skips a hold another owner protects, so a live worker with a slow renewal is
  not doubled; once its lease lapses the hold is free for anyone.
- ``action``/``due``: the manager's one pending action. The queue score equals
  ``due``, except while a renewal is on the wire: then it is ``min(due, lease)``,
  so the hold comes due again as soon as the renewing worker stops renewing its
  lease.
- ``cart``: the hold's cart id, so a claim can see whether the cart is checking out.

A checkout claim's ``until`` is its lease end on the fleet clock. ``fence``
only grows: it survives the claim's end, and the hash lives ``retention`` after
the last claim.

Every numeric argument is passed as a string formatted by Python (``repr`` of a
float): Lua's own number formatting keeps 14 digits and would round epoch times.
All keys a script touches live in one shard (the hold's, the cart's): those it
is given, and the hold and checkout keys it builds from the shard's prefixes,
which Redis Cluster allows because they hash to the same slot as the keys given.
"""

from __future__ import annotations

__all__ = [
    "BACKOFF",
    "CART_CLAIM",
    "CART_EXTEND",
    "CART_RELEASE",
    "CLAIM",
    "EVENTS",
    "EXTEND",
    "FORGET",
    "LOCK_EXTEND",
    "LOCK_RELEASE",
    "PACE",
    "SAVE",
    "SAVES",
    "STORE_SCRIPTS",
]

# The lease clock's "now" (see the module docstring): ARGV value, or Redis's TIME.
_LEASE_NOW = """
local function lease_now(given)
  if given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

# One write-back (SAVE runs one, SAVES several): hold, queue, cart and seq are its keys;
# id, cart id, data, and the write's fields joined by commas: fence, action, due,
# lease (s; '' when no renewal runs in the writer), ttl, owner, lease now ('' = TIME),
# mode ("save" | "restore"), and for a restore the seq at which Redis had acknowledged
# the writer's copy (0: unknown). Joined, because redis-py packs each argument of a
# command in Python: one argument for the nine costs a renewal's write-back a third
# less client CPU to send; none of them can hold a comma.
# Returns the write's seq if written, 0 if refused (tombstone, or stale fence).
# A restore writes only a fresher copy than the record: a larger fence, or the same
# fence written later (a larger seq; Redis's seq is raised past every acknowledged one
# when it is found to have lost writes, so a write made since counts as later).
# Only a restore of a hold whose renewal runs in the writer gives a lease: the score is
# then min(due, lease end), so another worker takes the renewal over if the writer dies.
_SAVE_ONE = _LEASE_NOW + """
local function save(hold, queue, cart, seqkey, id, cart_id, data, joined)
  local a = {}
  for field in string.gmatch(joined .. ',', '([^,]*),') do a[#a + 1] = field end
  local h = redis.call('HMGET', hold, 'fence', 'ended', 'member')
  if h[2] then return 0 end
  local fence = tonumber(a[1])
  local current = tonumber(h[1])
  if current then
    if a[8] == 'restore' then
      local written = h[3] and tonumber(string.sub(h[3], 1, 16), 16) or 0
      if current > fence or (current == fence and written >= tonumber(a[9])) then
        return 0
      end
    elseif fence < current then
      return 0
    end
  end
  local score, lease = a[3], '0'
  if a[4] ~= '' then
    local ends = lease_now(a[7]) + tonumber(a[4])
    lease = string.format('%.6f', ends)
    if ends < tonumber(a[3]) then score = lease end
  end
  local seq = redis.call('INCR', seqkey)
  local member = string.format('%016x', seq) .. ':' .. id
  if h[3] then redis.call('ZREM', queue, h[3]) end
  redis.call('ZADD', queue, score, member)
  redis.call('HSET', hold, 'fence', a[1], 'action', a[2], 'due', a[3],
             'member', member, 'data', data, 'owner', a[6], 'lease', lease,
             'cart', cart_id)
  local ttl = tonumber(a[5])
  redis.call('EXPIRE', hold, ttl)
  if not redis.call('ZSCORE', cart, id) then redis.call('ZADD', cart, seq, id) end
  for _, key in ipairs({queue, cart, seqkey}) do
    if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
  end
  return seq
end
"""

# KEYS: hold, queue, cart, seq. ARGV: id, cart id, data, the joined fields (above).
SAVE = _SAVE_ONE + """
return save(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
"""

# Several write-backs of one shard in one call, in order: KEYS and ARGV are SAVE's of
# each, one write-back after the other. Returns a list of SAVE's answers; a write-back
# that fails (a key of the wrong type, a refused write) answers its error in its
# place, and the others go on, as in a pipeline of SAVE calls. One call, not one per
# write-back: redis-py packs every argument and reads every answer in Python, which
# costs a client more than the write-back's own work.
SAVES = _SAVE_ONE + """
local out = {}
for i = 0, #KEYS / 4 - 1 do
  local n = i * 4
  local ok, answer = pcall(save, KEYS[n + 1], KEYS[n + 2], KEYS[n + 3], KEYS[n + 4],
                           ARGV[n + 1], ARGV[n + 2], ARGV[n + 3], ARGV[n + 4])
  if not ok and type(answer) ~= 'table' then answer = {err = tostring(answer)} end
  out[i + 1] = answer
end
return out
"""

# KEYS: queue, epoch, restoring, seq
# ARGV: now (the caller's, on Redis's clock), lease (s), limit, hold key prefix, owner,
#       fresh epoch, epoch ttl, checkout key prefix, lease now ('' = TIME),
#       the epoch the caller knew ('' if none), restore window (s), the largest seq the
#       caller saw acknowledged
# Returns {epoch, lease now, restore window end, seq as found, id1, fence1, data1,
# action1, due1, lapse1, id2, ...}: the caller takes its clock's skew from the lease now.
# A hold's lapse says how the claim came by it: 0 its last claim had been written back
# (its lease field is 0: a plain claim), or that claim's lease had not run out (this
# owner's safety net); 1 that claim's lease had run out and was this owner's; 2 it had
# run out and was another owner's (a takeover: a worker that died, stalled or closed
# mid-renewal).
# Redis lost writes when a caller that knew an epoch finds none (a restart without
# persistence), or saw a larger seq than there is now (a failover to a replica that
# lacked them, a restart from an old snapshot). Then for the restore window nothing is
# handed out, so every worker writes back what it knows first and the freshest record
# (the highest fence) wins before anyone acts on a stale one.
# An entry of a hold whose cart is claimed for checkout is not handed out, not even
# to the claim's owner (its checkout pauses them anyway, and a plan it wrote while
# paused would outlive it if it died): it is put back to the claim's lease end.
CLAIM = _LEASE_NOW + """
local lnow = lease_now(ARGV[9])
local now = tonumber(ARGV[1])
local checkouts = {}
local function checkout_end(cart)
  if not cart or cart == '' then return nil end
  if checkouts[cart] == nil then
    checkouts[cart] = false
    local c = redis.call('HMGET', ARGV[8] .. cart, 'owner', 'until')
    if c[1] then
      local left = tonumber(c[2]) - lnow
      if left > 0 then checkouts[cart] = now + left end
    end
  end
  return checkouts[cart] or nil
end
local function lapse(owner, lease)
  local ends = tonumber(lease or '0')
  if ends == 0 or ends > lnow then return 0 end
  return owner == ARGV[5] and 1 or 2
end
local epoch = redis.call('GET', KEYS[2])
local seq = tonumber(redis.call('GET', KEYS[4]) or '0')
local restoring = tonumber(redis.call('GET', KEYS[3]) or '0')
local lost = (not epoch and ARGV[10] ~= '') or seq < tonumber(ARGV[12])
if not epoch or (lost and restoring <= lnow) then
  -- a new epoch tells every worker to restore, whether or not it saw the lost writes
  -- (once per loss: a worker finding it again within the window only adds its own)
  epoch = ARGV[6]
  redis.call('SET', KEYS[2], epoch)
end
redis.call('EXPIRE', KEYS[2], ARGV[7])
local out = {epoch, string.format('%.6f', lnow), '0', seq}
if lost then
  -- seqs from now on are past every acknowledged one (SAVE's restore rule)
  if seq < tonumber(ARGV[12]) then redis.call('SET', KEYS[4], ARGV[12], 'KEEPTTL') end
  restoring = math.max(restoring, lnow + tonumber(ARGV[11]))
  redis.call('SET', KEYS[3], string.format('%.6f', restoring), 'EX', ARGV[7])
end
if restoring > lnow then
  out[3] = string.format('%.6f', now + restoring - lnow)
  return out
end
local lease_end = string.format('%.6f', lnow + tonumber(ARGV[2]))
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, member in ipairs(members) do
  local id = string.sub(member, 18)
  local key = ARGV[4] .. id
  local h = redis.call('HMGET', key, 'member', 'ended', 'owner', 'lease', 'data', 'action', 'due',
                       'cart')
  local blocked = nil
  if h[1] == member and not h[2] then blocked = checkout_end(h[8]) end
  if h[1] ~= member or h[2] then
    redis.call('ZREM', KEYS[1], member)
  elseif blocked then
    redis.call('ZADD', KEYS[1], string.format('%.6f', blocked), member)
  elseif h[3] ~= ARGV[5] and tonumber(h[4] or '0') > lnow then
    redis.call('ZADD', KEYS[1], string.format('%.6f', now + tonumber(h[4]) - lnow), member)
  else
    local fence = redis.call('HINCRBY', key, 'fence', 1)
    if #out == 4 then out[4] = redis.call('INCR', KEYS[4]) end
    redis.call('HSET', key, 'owner', ARGV[5], 'lease', lease_end)
    redis.call('ZADD', KEYS[1], lease_end, member)
    table.insert(out, id)
    table.insert(out, fence)
    table.insert(out, h[5])
    table.insert(out, h[6])
    table.insert(out, h[7])
    table.insert(out, lapse(h[3], h[4]))
  end
end
return out
"""

# The renewing worker's heartbeat: keeps its claims on holds whose renewal is on
# the wire for ``lease`` more seconds (0 at close: others take them over at once).
# KEYS: queue. ARGV: lease (s), owner, hold key prefix, lease now ('' = TIME), then
# (id, fence, safety-net due) triples; an entry's score is min(due, lease end).
# Returns the ids that are no longer this owner's. A hold whose record is gone with
# Redis's data is not among them: the restore that follows writes it back, leased.
EXTEND = _LEASE_NOW + """
local ends = lease_now(ARGV[4]) + tonumber(ARGV[1])
local lease_end = string.format('%.6f', ends)
local lost = {}
for i = 5, #ARGV, 3 do
  local key = ARGV[3] .. ARGV[i]
  local h = redis.call('HMGET', key, 'fence', 'owner', 'ended', 'member')
  if not h[1] then
    -- gone with the data: left to the restore
  elseif h[3] or not h[4] or h[2] ~= ARGV[2] or h[1] ~= ARGV[i + 1] then
    table.insert(lost, ARGV[i])
  else
    redis.call('HSET', key, 'lease', lease_end)
    local due = tonumber(ARGV[i + 2])  -- 'inf' (no safety net pending) may read as nil
    redis.call('ZADD', KEYS[1], (due and due < ends) and ARGV[i + 2] or lease_end, h[4])
  end
end
return lost
"""

# KEYS: hold, queue, cart, seq. ARGV: id, fence, final state, force ("1": the
# application's decision, taken whatever the fence), tombstone ttl, owner.
# Returns the write's seq if it ended the hold now, 1 if it was gone before, 0 if a
# stale fence was refused: another owner claimed the hold since. A newer claim of the
# caller's own never refuses it: that claim ran while the end was on its way, and its
# answer hands nothing out for a hold that ended (refused, the end would leave the
# hold to that answer, made from the record of before the end: renewed once more).
FORGET = """
local h = redis.call('HMGET', KEYS[1], 'fence', 'ended', 'member', 'owner')
if h[2] then return 1 end
if ARGV[4] ~= '1' and h[1] and tonumber(ARGV[2]) < tonumber(h[1]) and h[4] ~= ARGV[6] then
  return 0
end
if h[3] then redis.call('ZREM', KEYS[2], h[3]) end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'ended', ARGV[3], 'fence', h[1] or ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
local seq = redis.call('INCR', KEYS[4])
if redis.call('TTL', KEYS[4]) < 0 then redis.call('EXPIRE', KEYS[4], ARGV[5]) end
return seq
"""

# KEYS: checkout claim, cart. ARGV: owner, lease (s), lease now ('' = TIME),
# hold key prefix, ttl.
# Returns {fence, 0, 0} when claimed; {0, taken_by_checkout (0|1), free_in (s)} otherwise.
# The cart is taken while another claim runs (this owner's own included), and while
# another owner has one of its holds in hand (a claim's lease on the hold runs).
CART_CLAIM = _LEASE_NOW + """
local lnow = lease_now(ARGV[3])
local c = redis.call('HMGET', KEYS[1], 'until')
if c[1] and tonumber(c[1]) > lnow then
  return {0, 1, string.format('%.6f', tonumber(c[1]) - lnow)}
end
local busy = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local h = redis.call('HMGET', ARGV[4] .. id, 'owner', 'lease', 'ended')
  if not h[3] and h[1] and h[1] ~= ARGV[1] then
    local left = tonumber(h[2] or '0') - lnow
    if left > busy then busy = left end
  end
end
if busy > 0 then return {0, 0, string.format('%.6f', busy)} end
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[1],
           'until', string.format('%.6f', lnow + tonumber(ARGV[2])))
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {fence, 0, '0'}
"""

# KEYS: checkout claim. ARGV: owner, fence, lease (s), lease now ('' = TIME), ttl.
# Returns 1 if the claim ran and now lasts the lease from now, 0 if it is not held.
CART_EXTEND = _LEASE_NOW + """
local c = redis.call('HMGET', KEYS[1], 'owner', 'fence', 'until')
local lnow = lease_now(ARGV[4])
if c[1] ~= ARGV[1] or c[2] ~= ARGV[2] or tonumber(c[3]) <= lnow then return 0 end
redis.call('HSET', KEYS[1], 'until', string.format('%.6f', lnow + tonumber(ARGV[3])))
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

# KEYS: checkout claim. ARGV: owner, fence. Ends the claim if it is still this one;
# keeps the fence (it must keep growing). Returns 1 if ended, 0 if not this claim.
CART_RELEASE = """
local c = redis.call('HMGET', KEYS[1], 'owner', 'fence')
if c[1] ~= ARGV[1] or c[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'until', '0')
return 1
"""

# KEYS: lock. ARGV: token. Deletes the lock only if this holder still has it.
LOCK_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: lock. ARGV: token, ttl in ms. Extends the lock only if this holder still has it.
LOCK_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# KEYS: pace. ARGV: interval (s between calls; 0 = no ceiling), burst, lease now
# ('' = TIME), ttl. Takes the shop's next slot: not before its backoff end and,
# with a ceiling, ``interval`` after the slot before (``burst`` slots may be in the
# past: calls after a quiet spell go at once). Returns the seconds until the slot.
PACE = _LEASE_NOW + """
local lnow = lease_now(ARGV[3])
local p = redis.call('HMGET', KEYS[1], 'next', 'backoff')
local slot = math.max(lnow, tonumber(p[2] or '0'))
local interval = tonumber(ARGV[1])
if interval > 0 then
  local earliest = lnow - (tonumber(ARGV[2]) - 1) * interval
  slot = math.max(tonumber(p[1] or '0'), earliest, tonumber(p[2] or '0'))
  redis.call('HSET', KEYS[1], 'next', string.format('%.6f', slot + interval))
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return string.format('%.6f', math.max(slot - lnow, 0))
"""

# KEYS: pace. ARGV: seconds, lease now ('' = TIME), ttl. No slot of the shop before
# now + seconds (a later backoff end already there stands). Returns 1.
BACKOFF = _LEASE_NOW + """
local ends = lease_now(ARGV[2]) + tonumber(ARGV[1])
if ends > tonumber(redis.call('HGET', KEYS[1], 'backoff') or '0') then
  redis.call('HSET', KEYS[1], 'backoff', string.format('%.6f', ends))
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: the streams of a batch of hold events, one per event, in their order (a cart
# with several events repeats its stream; all in one shard). ARGV: maxlen, ttl, then
# the events' texts in KEYS' order. Appends each, then sets each stream's TTL once,
# after its last event: the TTL runs from the stream's newest event. One call for a
# batch, not an XADD per event: redis-py's Python packing of XADD's eight arguments
# and reading of its answer cost a client more than the event's own encoding.
# Returns how many events were appended.
EVENTS = """
local seen = {}
for i, key in ipairs(KEYS) do
  redis.call('XADD', key, 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[i + 2])
end
for _, key in ipairs(KEYS) do
  if not seen[key] then
    seen[key] = true
    redis.call('EXPIRE', key, ARGV[2])
  end
end
return #KEYS
"""

#: The scripts a RedisStore registers, by the name it calls them.
STORE_SCRIPTS = {
    "save": SAVE, "saves": SAVES, "claim": CLAIM, "extend": EXTEND, "forget": FORGET,
    "cart_claim": CART_CLAIM, "cart_extend": CART_EXTEND, "cart_release": CART_RELEASE,
    "pace": PACE, "backoff": BACKOFF, "events": EVENTS,
}
