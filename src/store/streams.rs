//! Streamed replies in flight: the messages posted so far for an agent's reply to one message,
//! under `strm/1/<agent>/<message id>` → JSON `{"v":1,"parts":[message ids]}`. A crash, a failed
//! model call or a give-up mid-stream finds them here and edits them (into the complete reply, or
//! the give-up notice) instead of posting a second reply beside a half-written one. The record
//! goes once the reply is finished with.

use serde::{Deserialize, Serialize};

use super::{classify, Store, StoreError};

#[derive(Serialize, Deserialize)]
struct StreamRecord {
    v: u32,
    parts: Vec<u64>,
}

fn key(agent: &str, message_id: u64) -> String {
    format!("strm/1/{agent}/{message_id}")
}

impl Store {
    /// The messages posted so far for the agent's streamed reply to `message_id`, in order
    /// (empty if none). An unreadable record is set aside and read as empty.
    pub fn stream_parts(&self, agent: &str, message_id: u64) -> Result<Vec<u64>, StoreError> {
        let k = key(agent, message_id);
        match self.db.get(&k).map_err(|e| classify(&self.path, e))? {
            None => Ok(Vec::new()),
            Some(bytes) => match serde_json::from_slice::<StreamRecord>(&bytes) {
                Ok(r) => Ok(r.parts),
                Err(e) => {
                    tracing::error!(agent, record = %k, error = %e, "undecodable stream record set aside under bad/");
                    self.set_aside(&k)?;
                    Ok(Vec::new())
                }
            },
        }
    }

    /// Records the messages posted so far for a streamed reply, durably (a `kill -9` right after
    /// still finds them).
    pub async fn save_stream_parts(&self, agent: &str, message_id: u64, parts: &[u64]) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&StreamRecord {
            v: 1,
            parts: parts.to_vec(),
        })
        .expect("stream records serialize");
        self.db
            .insert(key(agent, message_id), bytes)
            .map_err(|e| classify(&self.path, e))?;
        self.flush().await
    }

    /// Forgets a streamed reply's messages (the reply is finished with).
    pub fn remove_stream_parts(&self, agent: &str, message_id: u64) -> Result<(), StoreError> {
        self.db
            .remove(key(agent, message_id))
            .map(|_| ())
            .map_err(|e| classify(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stream_parts_survive_a_reopen_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert!(store.stream_parts("Ada", 9).unwrap().is_empty());
            store.save_stream_parts("Ada", 9, &[11, 12]).await.unwrap();
            store.save_stream_parts("Bea", 9, &[13]).await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.stream_parts("Ada", 9).unwrap(), vec![11, 12]);
        store.remove_stream_parts("Ada", 9).unwrap();
        assert!(store.stream_parts("Ada", 9).unwrap().is_empty());
        assert_eq!(store.stream_parts("Bea", 9).unwrap(), vec![13]);
    }

    #[test]
    fn an_unreadable_stream_record_is_set_aside_and_read_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.db.insert(key("Ada", 5), &b"not json"[..]).unwrap();
        assert!(store.stream_parts("Ada", 5).unwrap().is_empty());
        assert!(store.db.get(key("Ada", 5)).unwrap().is_none());
    }
}
