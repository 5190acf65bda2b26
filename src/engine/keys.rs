//! A short-lived cache of access keys. Every request needs its key twice (the signature check
//! and the caller's tenant); the cache saves both database round trips on a busy key. An entry
//! lives `TTL`; a key that loses its rights (disabled, deleted) is dropped sooner, when the
//! server's poll of the database's key epoch (`watch`, every `EPOCH_POLL`) sees it move.

use crate::meta::AccessKey;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(2);
/// How often a server asks whether a key lost its rights (an indexed one-row read).
pub const EPOCH_POLL: Duration = Duration::from_millis(100);
/// Entries kept at most; the map is cleared when full (a bound, not an LRU).
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct KeyCache {
    map: Mutex<HashMap<String, (Instant, AccessKey)>>,
}

impl KeyCache {
    pub fn get(&self, id: &str) -> Option<AccessKey> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, k)| k.clone())
    }

    /// Forgets every key (one lost its rights).
    pub fn clear(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub fn put(&self, key: &AccessKey) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key.access_key_id.clone(), (Instant::now(), key.clone()));
    }
}

/// Drops `cache`'s keys whenever the key epoch moves, polling every `EPOCH_POLL` until `stop`
/// fires. A failed poll clears the cache too (the epoch may have moved meanwhile).
pub async fn watch(
    cache: std::sync::Arc<KeyCache>,
    meta: std::sync::Arc<dyn crate::meta::MetaStore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut seen = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EPOCH_POLL) => {}
            _ = stop.changed() => return,
        }
        let now = meta.key_epoch().await.ok();
        if now.is_none() || now != seen {
            cache.clear();
        }
        seen = now;
    }
}
