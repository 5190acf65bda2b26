//! A short-lived cache of access keys. Every request needs its key twice (the signature check
//! and the caller's tenant); the cache saves both database round trips on a busy key. It holds
//! no coordination state: an entry lives `TTL`, so a disabled key stops working within `TTL`.

use crate::meta::AccessKey;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(2);
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

    pub fn put(&self, key: &AccessKey) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key.access_key_id.clone(), (Instant::now(), key.clone()));
    }
}
