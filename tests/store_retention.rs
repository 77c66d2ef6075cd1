//! Retention: troupe prunes per-message records older than `[store] retention_days` when it
//! starts (and hourly after), and keeps the recent ones.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

/// The smallest snowflake (message ID) of a Unix time in milliseconds.
fn snowflake(unix_ms: u64) -> u64 {
    (unix_ms - 1_420_070_400_000) << 22
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_older_than_the_retention_are_pruned_at_startup() {
    let (config, _dir) =
        common::config("[store]\nretention_days = 10\n\n[[agents]]\nname = \"Ada\"\nbackend = \"offline\"\n");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let day = 86_400_000;
    let (old, recent) = (snowflake(now - 11 * day), snowflake(now - 9 * day));
    let chain = troupe::acl::ChainLength::HUMAN;
    {
        let store = troupe::store::Store::open(&config.store_path).unwrap();
        for id in [old, recent] {
            store.record_chain(id, chain).unwrap();
        }
        store.record_answered("Ada", &[old, recent]).await.unwrap();
    }
    let running = common::start_unlocked(config.clone()).await;
    let store = running.store().clone();
    common::wait_for("the old records to be pruned", || async {
        (store.chain(old).unwrap().is_none() && !store.answered("Ada", old).unwrap()).then_some(())
    })
    .await;
    assert_eq!(store.chain(recent).unwrap(), Some(chain));
    assert!(store.answered("Ada", recent).unwrap());
    drop(store);
    running.stop().await;
}
