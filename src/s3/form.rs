//! Browser POST bodies (`multipart/form-data`), rewritten as bytes on their way to s3s's form
//! parser: `FilenameKey` substitutes `${filename}` in the key and takes out the checksum fields
//! the policy names in no condition; `Rechunk` cuts the body into pieces that parser can take.
//! Kept apart from `post`, which works on what s3s parsed (policy, fields, the response): this
//! is a streaming body wrapper that runs before s3s sees a byte.

use super::post;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Whether the body is a `multipart/form-data` form (a browser POST upload).
pub(super) fn is_form<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"))
}

/// Re-frames a browser POST body into pieces of at most 32 KiB. s3s's form parser keeps a read
/// that ends in `\r` and appends the next whole read to it, failing past 64 KiB.
pub struct Rechunk<B> {
    inner: B,
    pending: Bytes,
}

const FORM_PIECE: usize = 32 << 10;

impl<B> Rechunk<B> {
    pub fn new(inner: B) -> Self {
        Rechunk {
            inner,
            pending: Bytes::new(),
        }
    }
}

impl<B> Body for Rechunk<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(FORM_PIECE);
                return Poll::Ready(Some(Ok(Frame::data(this.pending.split_to(n)))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => this.pending = data,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Longest run of form fields ahead of the file part held for `${filename}` (a longer one is
/// passed on unchanged).
const MAX_FORM_HEAD: usize = 1 << 20;

/// Browser POST: S3 replaces `${filename}` in the `key` field with the file part's filename;
/// s3s drops the filename and checks the policy, stores the object and answers 201/303 with the
/// key it parsed. So the substitution is made here, in the form bytes before s3s reads them, and
/// all of those see the final key (the policy signature covers only the policy document). Only
/// the fields ahead of the file part are held, up to MAX_FORM_HEAD; anything unusual (no
/// boundary, an unparseable part) passes through unchanged. The fields read are recorded in
/// `post::Form`, and checksum fields that the policy names in no condition are taken out of the
/// form (`post::takes_over`). The body's length may change: s3s does not compare a form's
/// Content-Length with its body.
pub struct FilenameKey<B> {
    inner: B,
    /// `--boundary`.
    delim: Vec<u8>,
    /// The form so far while the file part's header is awaited; `None` once passed on.
    head: Option<Vec<u8>>,
    /// The head is parsed again once it is this long (a trickle of tiny frames costs O(n log n)).
    next_try: usize,
    out: std::collections::VecDeque<Frame<Bytes>>,
    eof: bool,
    form: post::Form,
}

impl<B> FilenameKey<B> {
    pub fn new(inner: B, boundary: Option<&str>, form: post::Form) -> Self {
        FilenameKey {
            inner,
            delim: [b"--", boundary.unwrap_or("").as_bytes()].concat(),
            head: boundary.map(|_| Vec::new()),
            next_try: 0,
            out: Default::default(),
            eof: false,
            form,
        }
    }

    /// Queues the held head, rewritten if it can be (`last`: no more form bytes will come).
    fn release(&mut self, last: bool) {
        let Some(head) = self.head.take() else {
            return;
        };
        let data = match rewrite_head(&head, &self.delim) {
            FormHead::Parsed(fields, rewritten) => {
                self.form.set(fields);
                rewritten.unwrap_or(head)
            }
            FormHead::NeedMore if !last && head.len() <= MAX_FORM_HEAD => {
                self.next_try = head.len() + head.len().clamp(512, 64 << 10);
                self.head = Some(head);
                return;
            }
            _ => head,
        };
        self.out.push_back(Frame::data(data.into()));
    }
}

#[derive(Debug, PartialEq, Eq)]
enum FormHead {
    NeedMore,
    Unchanged,
    /// The fields ahead of the file part, and the head rewritten if anything changed.
    Parsed(post::Fields, Option<Vec<u8>>),
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `(name, filename)` of a part's header block, in the one grammar s3s 0.14.1 accepts
/// (http/multipart.rs `parse_content_disposition`): `form-data; name="N"[; filename="F"]`.
fn disposition(mut block: &[u8]) -> Option<(&str, Option<&str>)> {
    let value = loop {
        let (line, rest) = match find(block, b"\r\n") {
            Some(i) => (&block[..i], &block[i + 2..]),
            None => (block, &b""[..]),
        };
        if let Some(i) = line.iter().position(|b| *b == b':')
            && line[..i].eq_ignore_ascii_case(b"content-disposition")
        {
            break std::str::from_utf8(&line[i + 1..])
                .ok()?
                .trim_matches([' ', '\t']);
        }
        if rest.is_empty() {
            return None;
        }
        block = rest;
    };
    let (name, rest) = value.strip_prefix("form-data; name=\"")?.split_once('"')?;
    let filename = match rest {
        "" => None,
        r => Some(r.strip_prefix("; filename=\"")?.strip_suffix('"')?),
    };
    let bad = |s: &str| s.is_empty() || s.contains('"');
    (!bad(name) && !filename.is_some_and(bad)).then_some((name, filename))
}

/// A field part of the form head: its name (lower-cased, as s3s does), the byte range of the
/// whole part (delimiter line to the CRLF ending the value) and of its value.
struct Part {
    name: String,
    span: (usize, usize),
    value: (usize, usize),
}

/// Parses the form head up to the file part's header block. The file part's header must end
/// within the first MAX_FORM_HEAD bytes, whatever the framing.
fn rewrite_head(all: &[u8], delim: &[u8]) -> FormHead {
    let buf = &all[..all.len().min(MAX_FORM_HEAD)];
    let open = [delim, b"\r\n"].concat();
    let sep = [b"\r\n", open.as_slice()].concat();
    // s3s allows one CRLF ahead of the first delimiter.
    let first = if buf.starts_with(b"\r\n") { 2 } else { 0 };
    if buf.len() < first + open.len() + 2 {
        return FormHead::NeedMore;
    }
    if !buf[first..].starts_with(&open) {
        return FormHead::Unchanged;
    }
    let mut pos = first + open.len();
    let mut parts = Vec::new();
    loop {
        let Some(hlen) = find(&buf[pos..], b"\r\n\r\n") else {
            return FormHead::NeedMore;
        };
        let Some((name, filename)) = disposition(&buf[pos..pos + hlen]) else {
            return FormHead::Unchanged;
        };
        let vstart = pos + hlen + 4;
        if name.eq_ignore_ascii_case("file") {
            return rewrite(all, &parts, filename);
        }
        // The value ends at CRLF + delimiter line; an empty one at the blank line's own CRLF.
        let Some(vlen) = find(&buf[vstart - 2..], &sep) else {
            return FormHead::NeedMore;
        };
        let vend = vstart - 2 + vlen;
        parts.push(Part {
            name: name.to_ascii_lowercase(),
            span: (pos - open.len(), vend + 2),
            value: (vstart, vend.max(vstart)),
        });
        pos = vend + sep.len();
    }
}

/// The fields of `parts`, and `buf` with `${filename}` replaced in the `key` field(s) and the
/// checksum fields `post::takes_over` taken out (`None` if neither applies).
fn rewrite(buf: &[u8], parts: &[Part], filename: Option<&str>) -> FormHead {
    const VAR: &str = "${filename}";
    let text = |p: &Part| std::str::from_utf8(&buf[p.value.0..p.value.1]).ok();
    let policy = parts
        .iter()
        .rev()
        .find(|p| p.name == "policy")
        .and_then(text);
    let mut fields = post::Fields::default();
    let mut out = Vec::with_capacity(buf.len() + 256);
    let mut at = 0;
    let mut changed = false;
    for p in parts {
        let Some(value) = text(p) else {
            if p.name == "key" {
                return FormHead::Unchanged;
            }
            let lossy = String::from_utf8_lossy(&buf[p.value.0..p.value.1]);
            fields.seen.push((p.name.clone(), lossy.into_owned()));
            continue;
        };
        if post::takes_over(&p.name, policy) {
            out.extend_from_slice(&buf[at..p.span.0]);
            at = p.span.1;
            changed = true;
            fields.taken.push((p.name.clone(), value.to_owned()));
            continue;
        }
        let value = match filename {
            Some(f) if p.name == "key" && value.contains(VAR) => {
                let value = value.replace(VAR, f);
                out.extend_from_slice(&buf[at..p.value.0]);
                out.extend_from_slice(value.as_bytes());
                at = p.value.1;
                changed = true;
                value
            }
            _ => value.to_owned(),
        };
        fields.seen.push((p.name.clone(), value));
    }
    out.extend_from_slice(&buf[at..]);
    FormHead::Parsed(fields, changed.then_some(out))
}

impl<B> Body for FilenameKey<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(frame) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(frame)));
            }
            if this.eof {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => {
                    this.eof = true;
                    this.release(true);
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let Some(head) = this.head.as_mut() else {
                        return Poll::Ready(Some(Ok(frame)));
                    };
                    match frame.into_data() {
                        Ok(data) => {
                            head.extend_from_slice(&data);
                            if head.len() >= this.next_try || head.len() > MAX_FORM_HEAD {
                                this.release(false);
                            }
                        }
                        // Trailers: the form's bytes are complete.
                        Err(frame) => {
                            this.release(true);
                            this.out.push_back(frame);
                        }
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.eof && self.out.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        // `${filename}` may change the length.
        SizeHint::default()
    }
}

/// The `boundary` parameter of a `multipart/form-data` Content-Type (quoted or not).
pub fn form_boundary(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"'))
            .filter(|b| !b.is_empty())
    })
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    fn through(input: &[u8], split: usize, boundary: Option<&str>) -> Vec<u8> {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = input
            .chunks(split)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
        let body = FilenameKey::new(body, boundary, post::Form::default());
        let out = futures::executor::block_on(http_body_util::BodyExt::collect(body)).unwrap();
        out.to_bytes().to_vec()
    }

    fn form(lead: &str, parts: &[(&str, &str)], file: &str, data: &str) -> String {
        let mut s = lead.to_owned();
        for (name, value) in parts {
            s.push_str(&format!(
                "--XbOuNd\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        s.push_str(&format!(
            "--XbOuNd\r\nContent-Disposition: form-data; name=\"file\"{file}\r\n\
             Content-Type: image/jpeg\r\n\r\n{data}\r\n--XbOuNd--\r\n"
        ));
        s
    }

    #[test]
    fn filename_replaces_the_variable_in_the_key_in_any_split() {
        let fields = [
            ("Key", "up/${filename}.d/${filename}"),
            ("policy", ""),
            ("x-amz-meta-a", "${filename}"),
        ];
        for lead in ["", "\r\n"] {
            let input = form(
                lead,
                &fields,
                "; filename=\"photo.jpg\"",
                "${filename}\r\n--X",
            );
            let want = input.replacen(
                "up/${filename}.d/${filename}",
                "up/photo.jpg.d/photo.jpg",
                1,
            );
            for split in [1, 2, 3, 5, 64, 100_000] {
                let out = through(input.as_bytes(), split, Some("XbOuNd"));
                assert_eq!(String::from_utf8(out).unwrap(), want, "split {split}");
            }
        }
    }

    #[test]
    fn unusual_forms_pass_unchanged() {
        let key = [("key", "up/${filename}")];
        let named = "; filename=\"a.txt\"";
        let cases = [
            form("", &key, "", "no filename"),
            form("", &[("key", "up/plain")], named, "no variable"),
            form("", &[("x", "${filename}")], named, "not the key"),
            form("junk", &key, named, "no delimiter first"),
            form(
                "",
                &[
                    ("key", "up/${filename}"),
                    ("big", &"x".repeat(MAX_FORM_HEAD)),
                ],
                named,
                "",
            ),
            form("", &key, "; filename=\"\"", "empty filename"),
            "--XbOuNd\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n${filename}"
                .to_owned(),
        ];
        for input in &cases {
            for split in [7, 100_000] {
                let out = through(input.as_bytes(), split, Some("XbOuNd"));
                assert!(
                    out == input.as_bytes(),
                    "{split}: {}",
                    &input[..input.len().min(200)]
                );
            }
        }
        let input = form("", &key, named, "");
        assert_eq!(
            through(input.as_bytes(), 9, Some("other")),
            input.as_bytes()
        );
        assert_eq!(through(input.as_bytes(), 9, None), input.as_bytes());
        assert_eq!(
            form_boundary("multipart/form-data; boundary=\"a b\""),
            Some("a b")
        );
        assert_eq!(
            form_boundary("multipart/form-data;charset=x;BOUNDARY=q"),
            Some("q")
        );
        assert_eq!(form_boundary("multipart/form-data"), None);
    }

    #[test]
    fn checksum_fields_the_policy_does_not_name_are_taken_out() {
        use base64::Engine as _;
        let policy = base64::engine::general_purpose::STANDARD
            .encode(r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[["eq","$key","k"]]}"#);
        let input = form(
            "",
            &[
                ("X-Amz-Checksum-Sha256", "abc="),
                ("key", "k"),
                ("policy", &policy),
                ("x-amz-checksum-crc32", "AAAAAA=="),
            ],
            "; filename=\"f\"",
            "data",
        );
        let want = form(
            "",
            &[("key", "k"), ("policy", &policy)],
            "; filename=\"f\"",
            "data",
        );
        for split in [1, 7, 100_000] {
            let frames: Vec<Result<Frame<Bytes>, BoxError>> = input
                .as_bytes()
                .chunks(split)
                .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
            let form = post::Form::default();
            let body = FilenameKey::new(body, Some("XbOuNd"), form.clone());
            let out = futures::executor::block_on(http_body_util::BodyExt::collect(body)).unwrap();
            assert_eq!(String::from_utf8(out.to_bytes().to_vec()).unwrap(), want);
            let fields = form.fields().unwrap();
            assert_eq!(
                fields.taken,
                [
                    ("x-amz-checksum-sha256".to_owned(), "abc=".to_owned()),
                    ("x-amz-checksum-crc32".to_owned(), "AAAAAA==".to_owned())
                ]
            );
            assert_eq!(fields.seen[0], ("key".to_owned(), "k".to_owned()));
        }
        // Without a policy s3s reads them itself.
        let input = form(
            "",
            &[("x-amz-checksum-sha256", "abc=")],
            "; filename=\"f\"",
            "d",
        );
        assert_eq!(
            through(input.as_bytes(), 5, Some("XbOuNd")),
            input.as_bytes()
        );
    }
}
