//! The broker's keys and the Lua scripts that run on it. Redis runs a script alone, so
//! numbering a broadcast, keeping it in the topic's history and publishing it are one
//! step: every node receives a topic's broadcasts in `seq` order.

/// The keys of one cluster (`namespace` keeps clusters on one Redis apart; pub/sub
/// channels are not per database, so a database number would not).
#[derive(Debug, Clone)]
pub struct Keys {
    /// The cluster's epoch of sequence numbers.
    pub epoch: String,
    /// Hash: topic → its latest `seq`.
    pub seqs: String,
    /// Where a counter the broker lost starts again (see [`SEED`]).
    pub floor: String,
    /// The channel every broadcast crosses, once.
    pub channel: String,
    /// Set: the nodes that have heartbeated (see [`REAP`]).
    pub nodes: String,
    /// `<prefix><node id>`: a node's heartbeat, expiring when it stops.
    pub node_prefix: String,
    history_prefix: String,
    presence_prefix: String,
    presence_index_prefix: String,
}

impl Keys {
    pub fn new(namespace: &str) -> Self {
        Self {
            epoch: format!("{namespace}:epoch"),
            seqs: format!("{namespace}:seq"),
            floor: format!("{namespace}:floor"),
            channel: format!("{namespace}:broadcasts"),
            nodes: format!("{namespace}:nodes"),
            node_prefix: format!("{namespace}:node:"),
            history_prefix: format!("{namespace}:history:"),
            presence_prefix: format!("{namespace}:presence:"),
            presence_index_prefix: format!("{namespace}:presence-of:"),
        }
    }

    /// A node's heartbeat key.
    pub fn node(&self, id: &str) -> String {
        format!("{}{id}", self.node_prefix)
    }

    /// Hash: node id → that node's presences on `topic` (a `presence_state` object).
    pub fn presence(&self, topic: &str) -> String {
        format!("{}{topic}", self.presence_prefix)
    }

    /// Set: the topics where node `id` has presences.
    pub fn presence_index(&self, id: &str) -> String {
        format!("{}{id}", self.presence_index_prefix)
    }

    /// The stream holding `topic`'s recent broadcasts, its entry ids `<seq>-0`.
    pub fn history(&self, topic: &str) -> String {
        format!("{}{topic}", self.history_prefix)
    }
}

/// Numbers, keeps and publishes one broadcast; returns its `seq`. A counter the broker
/// does not have starts at 1, or, once a broker that lost its state was seeded with a
/// floor, above the floor, with the entry marked `r` = 1 (see `ClusterHistory::restarts`).
/// KEYS: epoch, seqs, floor, history. ARGV: topic, event, payload, body, channel,
/// max events (0: keep none), max age (ms).
/// Refuses (`NOEPOCH`) when the broker has lost its state (a restart without
/// persistence): the node seeds it again ([`SEED`]) and retries, so no counter restarts
/// below a `seq` a client saw.
pub const PUBLISH: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOEPOCH the broker holds no epoch')
end
local seq = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local restarted = '0'
if seq == 1 then
  local floor = tonumber(redis.call('GET', KEYS[3]) or '0')
  if floor > 0 then
    seq = floor + 1
    restarted = '1'
    redis.call('HSET', KEYS[2], ARGV[1], seq)
  end
end
if tonumber(ARGV[6]) > 0 then
  local now = redis.call('TIME')
  local ms = now[1] * 1000 + math.floor(now[2] / 1000)
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], string.format('%d-0', seq),
    'e', ARGV[2], 'p', ARGV[3], 't', string.format('%d', ms), 'r', restarted)
  redis.call('PEXPIRE', KEYS[4], ARGV[7])
end
redis.call('PUBLISH', ARGV[5], string.format('%d ', seq) .. ARGV[4])
return seq
"#;

/// A topic's latest `seq`, the broker's clock (ms) and, when ARGV[2] (the first id
/// wanted, `<seq>-0`) is not empty, the history from there on.
/// KEYS: seqs, history. ARGV: topic, first id.
pub const HISTORY: &str = r#"
local top = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
if ARGV[2] == '' then
  return {top, ms, {}}
end
return {top, ms, redis.call('XRANGE', KEYS[2], ARGV[2], '+')}
"#;

/// Puts back what a broker that lost its state (or a new one) needs: the epoch (kept if
/// one is there: returned either way), the floor and the counters this node knows,
/// none lowered. KEYS: epoch, seqs, floor. ARGV: epoch, floor, then topic, seq pairs.
pub const SEED: &str = r#"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
local epoch = redis.call('GET', KEYS[1])
if epoch ~= ARGV[1] then
  return epoch
end
if tonumber(ARGV[2]) > tonumber(redis.call('GET', KEYS[3]) or '0') then
  redis.call('SET', KEYS[3], ARGV[2])
end
for i = 3, #ARGV, 2 do
  if tonumber(ARGV[i + 1]) > tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0') then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
return epoch
"#;

/// The other live nodes' presences on a topic. KEYS: the topic's presence hash. ARGV:
/// the heartbeat key prefix, this node's id.
pub const PRESENCE_OF_OTHERS: &str = r#"
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. all[i]) == 1 then
    table.insert(out, all[i + 1])
  end
end
return out
"#;

/// Takes the nodes whose heartbeat expired out of the node set and returns them: each
/// dead node is returned to exactly one caller, who broadcasts its presences' leaves.
/// KEYS: the node set. ARGV: the heartbeat key prefix, this node's id.
pub const REAP: &str = r#"
local dead = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. id) == 0 then
    redis.call('SREM', KEYS[1], id)
    table.insert(dead, id)
  end
end
return dead
"#;

/// The nodes whose heartbeat is alive. KEYS: the node set. ARGV: the heartbeat key prefix.
pub const LIVE: &str = r#"
local live = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 1 then
    table.insert(live, id)
  end
end
return live
"#;
