//! Key-ordered listings with prefix, delimiter and a resume point, from the database index.
//!
//! A delimiter listing rolls keys up into common prefixes. Runs of keys are read as index
//! ranges (`list_page`, growing batches); once a range reaches a common prefix, the database
//! walks the run of prefixes that follows (`list_walk`: one seek per prefix, from the
//! previous one's successor; one statement on PostgreSQL, a loop of cached one-row seeks on
//! SQLite) up to the next key. So a page costs O(page size) rows and index seeks, never
//! O(keys under a prefix).

use super::{Error, Result};
use crate::meta::{KeyRange, ListEntry, MetaStore, Rollup, prefix_successor};

/// Rows fetched per statement (bounded; a page needs at most `max_keys + 1` items).
const BATCH: usize = 1000;
/// First range read of a delimiter listing, and after a walk: a read that lands on a common
/// prefix uses one row, and ranges that find keys grow ×4 per round.
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
    let roll = q
        .delimiter
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(|delimiter| Rollup {
            prefix: &q.prefix,
            delimiter,
        });
    // Such a walk ends at its first common prefix, short of `want` with more to come.
    let stops_at_prefix = roll.is_some_and(|r| r.resume_char().is_none());
    let mut batch = if roll.is_some() { FIRST_BATCH } else { BATCH };
    let mut walking = false;
    // Every round but the last emits or skips at least one item, so this bound is never the
    // reason a listing ends.
    for _ in 0..(q.max_keys + 3) * 2 {
        let left = q.max_keys - out.items.len() + 1;
        let want = left.min(if walking { BATCH } else { batch });
        let range = KeyRange {
            bucket_id,
            start: cursor.start.as_str(),
            start_inclusive: cursor.inclusive,
            before: upper.as_deref(),
        };
        let rows = match roll.filter(|_| walking) {
            Some(r) => meta.list_walk(range, r, want).await?,
            None => meta.list_page(range, want).await?,
        };
        let (got, exhausted) = (rows.len(), rows.len() < want);
        match scan(q, rows, walking, &mut out, &mut cursor) {
            Scan::Full | Scan::End => return Ok(out),
            // A range reached a common prefix: walk the prefixes from its successor.
            Scan::Reseek => walking = true,
            // The walk ended at a key (or found nothing): read keys as ranges again.
            Scan::More {
                after_prefix: false,
            } if walking => {
                if got == 0 {
                    return Ok(out);
                }
                walking = false;
                batch = FIRST_BATCH;
            }
            // The walk ended at a prefix: no key follows, unless it stops at every prefix.
            Scan::More { after_prefix: true } if walking => {
                if exhausted && !stops_at_prefix {
                    return Ok(out);
                }
            }
            Scan::More { .. } if exhausted => return Ok(out),
            Scan::More { .. } => batch = (batch * 4).min(BATCH),
        }
    }
    Err(Error::InvalidArgument("listing did not converge".into()))
}

enum Scan {
    /// The page is full (and `truncated` says whether more exist).
    Full,
    /// No key can follow: the prefix space is exhausted.
    End,
    /// A range read reached a common prefix (emitted or skipped): the rest of its rows are
    /// under that prefix; continue past it.
    Reseek,
    /// All rows consumed; continue from the cursor. `after_prefix`: the last row was a common
    /// prefix.
    More { after_prefix: bool },
}

/// Takes a statement's rows into the page: keys, and from a walk also common prefixes (each
/// once, with the rows after it past it).
fn scan(
    q: &ListQuery,
    rows: Vec<ListEntry>,
    walk: bool,
    out: &mut ListResult,
    cursor: &mut Cursor,
) -> Scan {
    let mut after_prefix = false;
    for e in rows {
        let rolled = q
            .delimiter
            .as_deref()
            .filter(|d| !d.is_empty())
            .and_then(|delimiter| {
                let roll = Rollup {
                    prefix: &q.prefix,
                    delimiter,
                };
                roll.common_prefix(&e.key).map(str::to_owned)
            });
        let item_key = rolled.as_deref().unwrap_or(&e.key);
        // An item at or before the resume point was on an earlier page (a marker may fall
        // inside a common prefix).
        let seen = q.after.as_deref().is_some_and(|a| item_key <= a);
        if !seen && out.items.len() == q.max_keys {
            out.truncated = true;
            return Scan::Full;
        }
        after_prefix = rolled.is_some();
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
                if !walk {
                    return Scan::Reseek;
                }
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
    Scan::More { after_prefix }
}
