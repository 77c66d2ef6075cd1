//! Sharding as Discord does it: which shard a guild's events go to, the IDENTIFY `shard` array
//! checked (4010 Invalid shard, 4011 Sharding required), and IDENTIFYs limited per
//! `max_concurrency` bucket. Pure: the gateway asks, with the clock passed in.
//!
//! Discord's rules (Gateway docs, "Sharding"): a guild's events go to shard
//! `(guild_id >> 22) % num_shards`, DMs only to shard 0; a shard may hold at most 2,500 guilds,
//! more is refused with 4011; `max_concurrency` IDENTIFYs are allowed per 5 seconds, one per
//! bucket `shard_id % max_concurrency`, and an IDENTIFY over that limit is answered with op 9
//! INVALID_SESSION.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Discord's most guilds per shard: an IDENTIFY that would give one shard more gets 4011.
pub const MAX_GUILDS_PER_SHARD: usize = 2500;

/// One IDENTIFY per bucket per this long (Discord's identify interval).
pub const IDENTIFY_INTERVAL: Duration = Duration::from_secs(5);

/// Slack the sandbox grants on [`IDENTIFY_INTERVAL`]: a client that starts its shards 5 seconds
/// apart (serenity 0.12 does, counting from the previous websocket connect) sends the IDENTIFYs
/// a few milliseconds of scheduling closer or further apart; they are not refused for that.
pub const IDENTIFY_SLACK: Duration = Duration::from_secs(1);

/// The shard that receives events of `guild` (`None`: a DM, always shard 0) when a bot runs
/// `num_shards` shards.
pub fn shard_of(guild: Option<u64>, num_shards: u64) -> u64 {
    match guild {
        Some(id) if num_shards > 1 => (id >> 22) % num_shards,
        _ => 0,
    }
}

/// A bot's sharding, as `GET /gateway/bot` reports it and IDENTIFY enforces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BotSharding {
    /// `shards` in `GET /gateway/bot`: the count Discord recommends.
    pub recommended: u64,
    /// `session_start_limit.max_concurrency`.
    pub max_concurrency: u64,
    /// Most guilds one shard may hold (Discord: [`MAX_GUILDS_PER_SHARD`]; lower it to make a
    /// small world's bot "large").
    pub max_guilds_per_shard: usize,
    /// Whether IDENTIFYs are limited per bucket. On for bots whose sharding was configured, off
    /// otherwise, so single-session tests that reconnect at once are not slowed down.
    pub limit_identify: bool,
}

impl Default for BotSharding {
    fn default() -> Self {
        Self {
            recommended: 1,
            max_concurrency: 1,
            max_guilds_per_shard: MAX_GUILDS_PER_SHARD,
            limit_identify: false,
        }
    }
}

/// Checks IDENTIFY's `shard` field (`None`: absent, one shard) against the bot's guild IDs and
/// returns `[shard_id, num_shards]`; a refusal carries the close code and reason Discord sends.
pub fn check_identify(
    shard: Option<&serde_json::Value>,
    guilds: &[u64],
    sharding: &BotSharding,
) -> Result<[u64; 2], (u16, &'static str)> {
    let pair = match shard {
        None | Some(serde_json::Value::Null) => [0, 1],
        Some(v) => {
            let ints: Option<Vec<u64>> = v
                .as_array()
                .map(|a| a.iter().map(serde_json::Value::as_u64).collect::<Option<Vec<u64>>>())
                .unwrap_or(None);
            match ints.as_deref() {
                Some(&[id, n]) if n > 0 && id < n => [id, n],
                _ => return Err((4010, "Invalid shard")),
            }
        }
    };
    let mut per_shard: HashMap<u64, usize> = HashMap::new();
    for g in guilds {
        *per_shard.entry(shard_of(Some(*g), pair[1])).or_default() += 1;
    }
    if per_shard.values().any(|n| *n > sharding.max_guilds_per_shard) {
        return Err((4011, "Sharding required"));
    }
    Ok(pair)
}

/// When each bot's identify buckets last accepted an IDENTIFY.
#[derive(Debug, Default)]
pub struct IdentifyBuckets {
    last: HashMap<(u64, u64), Instant>,
}

impl IdentifyBuckets {
    /// Whether `bot` may IDENTIFY shard `shard_id` at `now` (recorded if so): one IDENTIFY per
    /// bucket `shard_id % max_concurrency` per [`IDENTIFY_INTERVAL`], less [`IDENTIFY_SLACK`].
    pub fn admit(&mut self, bot: u64, shard_id: u64, max_concurrency: u64, now: Instant) -> bool {
        let bucket = shard_id % max_concurrency.max(1);
        let key = (bot, bucket);
        let window = IDENTIFY_INTERVAL - IDENTIFY_SLACK;
        if self.last.get(&key).is_some_and(|t| now.duration_since(*t) < window) {
            return false;
        }
        self.last.insert(key, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn guilds_go_to_the_shard_of_discords_formula_and_dms_to_shard_0() {
        let g = 41_771_983_423_143_937u64;
        assert_eq!(shard_of(Some(g), 1), 0);
        assert_eq!(shard_of(Some(g), 4), (g >> 22) % 4);
        assert_eq!(shard_of(Some(5 << 22), 4), 1);
        assert_eq!(shard_of(Some(6 << 22), 4), 2);
        assert_eq!(shard_of(None, 4), 0, "DMs");
        assert_eq!(shard_of(Some(7 << 22), 0), 0, "no shard count: one shard");
    }

    #[test]
    fn an_identify_without_shard_is_shard_0_of_1() {
        let s = BotSharding::default();
        assert_eq!(check_identify(None, &[1 << 22], &s), Ok([0, 1]));
        assert_eq!(check_identify(Some(&json!(null)), &[], &s), Ok([0, 1]));
        assert_eq!(check_identify(Some(&json!([3, 4])), &[], &s), Ok([3, 4]));
    }

    #[test]
    fn a_malformed_shard_array_is_closed_with_4010() {
        let s = BotSharding::default();
        for bad in [
            json!([4, 4]),
            json!([0, 0]),
            json!([1]),
            json!([0, 1, 2]),
            json!("0,1"),
            json!([-1, 2]),
        ] {
            assert_eq!(
                check_identify(Some(&bad), &[], &s),
                Err((4010, "Invalid shard")),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_shard_holding_too_many_guilds_is_closed_with_4011() {
        let s = BotSharding {
            max_guilds_per_shard: 2,
            ..BotSharding::default()
        };
        // Four guilds, one per shard of 4, two per shard of 2.
        let guilds: Vec<u64> = (0..4).map(|i| i << 22).collect();
        assert_eq!(
            check_identify(Some(&json!([0, 1])), &guilds, &s),
            Err((4011, "Sharding required"))
        );
        assert_eq!(check_identify(Some(&json!([1, 2])), &guilds, &s), Ok([1, 2]));
        assert_eq!(check_identify(Some(&json!([0, 4])), &guilds, &s), Ok([0, 4]));
    }

    #[test]
    fn one_identify_per_bucket_per_interval() {
        let mut b = IdentifyBuckets::default();
        let t0 = Instant::now();
        // max_concurrency 2: shards 0 and 1 are in different buckets, 2 shares shard 0's.
        assert!(b.admit(7, 0, 2, t0));
        assert!(b.admit(7, 1, 2, t0));
        assert!(!b.admit(7, 2, 2, t0 + Duration::from_secs(1)));
        assert!(b.admit(8, 0, 2, t0), "another bot has its own buckets");
        assert!(b.admit(7, 2, 2, t0 + IDENTIFY_INTERVAL));
        // max_concurrency 1: every shard shares one bucket.
        let mut one = IdentifyBuckets::default();
        assert!(one.admit(7, 0, 1, t0));
        assert!(!one.admit(7, 3, 1, t0 + Duration::from_secs(2)));
        assert!(one.admit(7, 3, 1, t0 + IDENTIFY_INTERVAL));
    }
}
