//! Key-ordered listings with prefix, delimiter and a resume point, from the database index.
//!
//! A delimiter listing rolls keys up into common prefixes; after emitting one, the next index
//! seek starts at the prefix's successor, so a page costs O(page size) queries and rows, never
//! O(keys under a prefix).

use super::{Error, Result};
use crate::meta::{ListEntry, MetaStore};

/// Rows fetched per index seek (bounded; a page needs at most `max_keys + 1` items).
const BATCH: usize = 1000;
/// First seek of a delimiter listing, and after each common prefix. Small: a seek that lands on
/// a common prefix uses one row, and every row read costs (on SQLite, a message from the
/// connection's thread); 16 here halved the pages/s of a 100-prefix listing. Seeks that find
/// keys grow ×4 per round.
const FIRST_BATCH: usize = 2;

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Resume point, exclusive (v1 `marker`, v2 `start-after` or continuation token).
    pub after: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Clone)]
pub enum ListItem {
    Object(ListEntry),
    Prefix(String),
}

impl ListItem {
    /// The key (or common prefix) a later page resumes after.
    pub fn resume_key(&self) -> &str {
        match self {
            ListItem::Object(e) => &e.key,
            ListItem::Prefix(p) => p,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListResult {
    pub items: Vec<ListItem>,
    pub truncated: bool,
}

/// Where the next index seek starts.
struct Cursor {
    start: String,
    inclusive: bool,
}

pub(super) async fn list(
    meta: &dyn MetaStore,
    bucket_id: &str,
    q: &ListQuery,
) -> Result<ListResult> {
    let mut out = ListResult::default();
    if q.max_keys == 0 {
        return Ok(out);
    }
    let upper = prefix_successor(&q.prefix);
    let mut cursor = match &q.after {
        Some(a) if a.as_str() >= q.prefix.as_str() => Cursor {
            start: a.clone(),
            inclusive: false,
        },
        _ => Cursor {
            start: q.prefix.clone(),
            inclusive: true,
        },
    };
    // With a delimiter, a seek that lands on a common prefix uses one row and skips the rest, so
    // seeks start small and grow only while rows are used as keys: rows read stay O(page).
    let mut batch = if q.delimiter.is_some() {
        FIRST_BATCH
    } else {
        BATCH
    };
    // Each round is one index seek; every round but the last emits or skips at least one item,
    // so this bound is never the reason a listing ends.
    for _ in 0..(q.max_keys + 3) * 2 {
        let want = (q.max_keys - out.items.len() + 1).min(batch);
        let rows = meta
            .list_page(
                bucket_id,
                &cursor.start,
                cursor.inclusive,
                upper.as_deref(),
                want,
            )
            .await?;
        let exhausted = rows.len() < want;
        match scan(q, rows, &mut out, &mut cursor) {
            Scan::Full | Scan::End => return Ok(out),
            Scan::Reseek => batch = FIRST_BATCH.min(batch),
            Scan::More if exhausted => return Ok(out),
            Scan::More => batch = (batch * 4).min(BATCH),
        }
    }
    Err(Error::InvalidArgument("listing did not converge".into()))
}

enum Scan {
    /// The page is full (and `truncated` says whether more exist).
    Full,
    /// No key can follow: the prefix space is exhausted.
    End,
    /// A common prefix was emitted or skipped: seek past it.
    Reseek,
    /// All rows consumed; continue from the last key.
    More,
}

fn scan(q: &ListQuery, rows: Vec<ListEntry>, out: &mut ListResult, cursor: &mut Cursor) -> Scan {
    for e in rows {
        let rolled = q
            .delimiter
            .as_deref()
            .filter(|d| !d.is_empty())
            .and_then(|d| common_prefix(&e.key, &q.prefix, d));
        let item_key = rolled.as_deref().unwrap_or(&e.key);
        // An item at or before the resume point was on an earlier page (a marker may fall
        // inside a common prefix).
        let seen = q.after.as_deref().is_some_and(|a| item_key <= a);
        if !seen && out.items.len() == q.max_keys {
            out.truncated = true;
            return Scan::Full;
        }
        match rolled {
            Some(cp) => {
                let Some(next) = prefix_successor(&cp) else {
                    return Scan::End;
                };
                if !seen {
                    out.items.push(ListItem::Prefix(cp));
                }
                *cursor = Cursor {
                    start: next,
                    inclusive: true,
                };
                return Scan::Reseek;
            }
            None => {
                cursor.start.clone_from(&e.key);
                cursor.inclusive = false;
                if !seen {
                    out.items.push(ListItem::Object(e));
                }
            }
        }
    }
    Scan::More
}

/// `prefix + (rest up to and including the first delimiter)`, if the rest contains one.
fn common_prefix(key: &str, prefix: &str, delimiter: &str) -> Option<String> {
    let rest = key.strip_prefix(prefix)?;
    let pos = rest.find(delimiter)?;
    Some(format!("{prefix}{}", &rest[..pos + delimiter.len()]))
}

/// The smallest string greater than every string starting with `p` (in byte order, which for
/// UTF-8 is code-point order), or `None` when `p` is empty or all U+10FFFF.
pub fn prefix_successor(p: &str) -> Option<String> {
    let mut chars: Vec<char> = p.chars().collect();
    while let Some(last) = chars.pop() {
        let mut n = last as u32 + 1;
        if (0xD800..=0xDFFF).contains(&n) {
            n = 0xE000;
        }
        if let Some(c) = char::from_u32(n) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_orders_after_every_extension() {
        assert_eq!(prefix_successor("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_successor(""), None);
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        for p in ["a/", "ü/", "x\u{7F}", "photos/2024/"] {
            let s = prefix_successor(p).unwrap();
            for ext in ["", "\u{0}", "zzz", "\u{10FFFF}\u{10FFFF}"] {
                let k = format!("{p}{ext}");
                assert!(k.as_bytes() < s.as_bytes(), "{k:?} < {s:?}");
            }
            assert!(p.as_bytes() < s.as_bytes());
        }
    }

    #[test]
    fn common_prefix_rolls_up_at_first_delimiter() {
        assert_eq!(common_prefix("a/b/c", "", "/").as_deref(), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", "/").as_deref(), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/", "/"), None);
        assert_eq!(common_prefix("ab::c", "", "::").as_deref(), Some("ab::"));
    }
}
