//! The admin API's search over a tenant's current objects, newest first, from the index
//! `objects_created` (bucket, creation time, id). A page costs at most `SCAN_FACTOR × limit`
//! index entries per bucket searched, however many objects match: filters the index does not
//! hold (prefix, size, content type) are applied to what the walk read, and a page that found
//! fewer matches than asked ends with a cursor all the same.

use super::{Engine, Error, Result};
use crate::meta::{SearchEntry, SearchStep};
use base64::Engine as _;

/// Index entries read per bucket and page, as a multiple of the page size.
pub const SCAN_FACTOR: usize = 4;
/// Objects per page at most (and by default, `DEFAULT_LIMIT`).
pub const MAX_LIMIT: usize = 1000;
pub const DEFAULT_LIMIT: usize = 100;

#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub tenant: String,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    /// Microseconds since the epoch, exclusive.
    pub created_after: Option<i64>,
    pub created_before: Option<i64>,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    /// An exact content type, or a prefix ending in `*` (`image/*`).
    pub content_type: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SearchItem {
    pub bucket: String,
    pub key: String,
    pub size: i64,
    pub etag: String,
    pub content_type: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SearchPage {
    pub items: Vec<SearchItem>,
    /// Where the next page starts (`None`: there is none).
    pub next_cursor: Option<String>,
    /// Index entries this page read: at most `SCAN_FACTOR × limit` per bucket.
    pub scanned: usize,
}

/// A position in the walk: `(created_at, id)`; pages go to ever smaller positions.
type Position = (i64, String);

impl Engine {
    pub async fn search_objects(&self, q: &SearchQuery) -> Result<SearchPage> {
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(Error::InvalidArgument(format!(
                "limit must be 1 to {MAX_LIMIT}"
            )));
        }
        let from: Position = match &q.cursor {
            Some(c) => decode_cursor(c)?,
            None => (i64::MAX, String::new()),
        };
        let t = self.tenant(&q.tenant).await?;
        let buckets = match &q.bucket {
            Some(name) => {
                let b = self.meta.bucket(&t.id, name).await?;
                vec![b.ok_or(Error::NoSuchBucket)?]
            }
            None => self.meta.list_buckets(&t.id).await?,
        };
        let scan = limit * SCAN_FACTOR;
        let mut found: Vec<(Position, SearchItem)> = Vec::new();
        // Everything at or after the frontier has been read in every bucket.
        let mut frontier: Option<Position> = None;
        let mut scanned = 0;
        for b in &buckets {
            let step = SearchStep {
                bucket_id: &b.id,
                from: (from.0, &from.1),
                after: q.created_after.unwrap_or(i64::MIN),
                before: q.created_before.unwrap_or(i64::MAX),
                limit: scan,
            };
            let rows = self.meta.search_step(step).await?;
            scanned += rows.len();
            if rows.len() == scan
                && let Some(last) = rows.last()
            {
                let pos = (last.created_at, last.id.clone());
                frontier = Some(frontier.map_or(pos.clone(), |f| f.max(pos)));
            }
            found.extend(
                rows.into_iter()
                    .filter(|e| matches(q, e))
                    .map(|e| ((e.created_at, e.id.clone()), item(&b.name, e))),
            );
        }
        if let Some(f) = &frontier {
            found.retain(|(p, _)| p >= f);
        }
        found.sort_by(|a, b| b.0.cmp(&a.0));
        found.truncate(limit);
        let next = match (found.len() == limit, frontier) {
            (true, _) => found.last().map(|(p, _)| p.clone()),
            (false, f) => f,
        };
        Ok(SearchPage {
            items: found.into_iter().map(|(_, i)| i).collect(),
            next_cursor: next.map(|p| encode_cursor(&p)),
            scanned,
        })
    }
}

fn matches(q: &SearchQuery, e: &SearchEntry) -> bool {
    let size = u64::try_from(e.size).unwrap_or(0);
    q.prefix.as_deref().is_none_or(|p| e.key.starts_with(p))
        && q.min_size.is_none_or(|m| size >= m)
        && q.max_size.is_none_or(|m| size <= m)
        && q.content_type.as_deref().is_none_or(|want| {
            let have = e.content_type.as_deref().unwrap_or("");
            match want.strip_suffix('*') {
                Some(p) => have.starts_with(p),
                None => have == want,
            }
        })
}

fn item(bucket: &str, e: SearchEntry) -> SearchItem {
    SearchItem {
        bucket: bucket.to_owned(),
        key: e.key,
        size: e.size,
        etag: e.etag,
        content_type: e.content_type,
        created_at: super::rfc3339(e.created_at),
    }
}

fn encode_cursor((at, id): &Position) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{at}:{id}"))
}

fn decode_cursor(c: &str) -> Result<Position> {
    let bad = || Error::InvalidArgument("the cursor is not one this API gave".into());
    let raw = (base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c)).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (at, id) = text.split_once(':').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let p = (1_700_000_000_000_000, "0190-abc".to_owned());
        assert_eq!(
            super::decode_cursor(&super::encode_cursor(&p)).ok(),
            Some(p)
        );
        for bad in ["", "!!", "bm9jb2xvbg", "eDox"] {
            assert!(super::decode_cursor(bad).is_err(), "{bad:?}");
        }
    }
}
