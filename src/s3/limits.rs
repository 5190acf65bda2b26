//! Limits checked in front of s3s, which has none of its own for these: declared sizes,
//! presigned-URL lifetime, and the size of each aws-chunked chunk (s3s buffers a chunk whole
//! before verifying it, so an unbounded chunk would be unbounded memory).

use super::post;
use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use s3s::{S3Error, s3_error};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Largest single PUT or part (S3: 5 GiB). Larger objects are multipart.
pub const MAX_SINGLE_UPLOAD: u64 = 5 << 30;
/// Largest aws-chunked chunk accepted (SDKs send 64 KiB–8 MiB chunks).
pub const MAX_CHUNK: u64 = 16 << 20;
/// Presigned URLs live at most 7 days (S3's limit).
pub const MAX_PRESIGN_SECS: u64 = 604_800;
/// Largest XML request body (DeleteObjects with 1,000 keys, CompleteMultipartUpload with 10,000
/// parts fit). s3s's own check answers 500 when it trips, so it is enforced here first.
pub const MAX_XML_BODY: u64 = 4 << 20;
/// Largest browser POST upload: s3s holds the file part in memory.
pub const MAX_POST_FILE: u64 = 64 << 20;
/// Largest request head (request line and headers) accepted; S3's is 8 KiB, and presigned URLs
/// with long keys plus SDK headers fit easily. The HTTP layer's buffer (4 × this) refuses larger
/// heads with a bare 431 before they reach here.
pub(super) const MAX_HEAD: usize = 64 << 10;
/// Longest chunk header line (`<hex size>;chunk-signature=<64 hex>`) accepted.
const MAX_CHUNK_LINE: usize = 4096;

fn header_u64<B>(req: &http::Request<B>, name: &str) -> Option<u64> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Rejects requests whose declared sizes or presigned lifetime are over the limits.
pub fn check<B>(req: &http::Request<B>) -> Result<(), S3Error> {
    check_head(req)?;
    check_no_nul(req.uri())?;
    super::sse::check_headers(req.headers())?;
    let declared = header_u64(req, "x-amz-decoded-content-length")
        .or_else(|| header_u64(req, "content-length"))
        .unwrap_or(0);
    if req.method() == http::Method::PUT && declared > MAX_SINGLE_UPLOAD {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size"
        ));
    }
    if req.method() == http::Method::POST && !is_form(req) && declared > MAX_XML_BODY {
        return Err(s3_error!(
            MaxMessageLengthExceeded,
            "Your request was too big."
        ));
    }
    check_content_md5(req)?;
    if let Some(q) = req.uri().query() {
        for (k, v) in form_urlencoded_pairs(q) {
            if k.eq_ignore_ascii_case("X-Amz-Expires") {
                // A negative lifetime has expired before it began (403, as the conformance
                // suite expects); one over 7 days is S3's 400.
                match v.parse::<i64>() {
                    Ok(n) if n < 0 => {
                        return Err(s3_error!(AccessDenied, "Request has expired"));
                    }
                    Ok(n) if n.unsigned_abs() <= MAX_PRESIGN_SECS => {}
                    _ => {
                        return Err(s3_error!(
                            AuthorizationQueryParametersError,
                            "X-Amz-Expires must be less than a week (in seconds) that is; 604800 seconds"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Refuses a request head over `MAX_HEAD` bytes, counted as on the wire (`name: value\r\n`).
fn check_head<B>(req: &http::Request<B>) -> Result<(), S3Error> {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + target + 12;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if line + headers <= MAX_HEAD {
        return Ok(());
    }
    let mut err = S3Error::with_message(
        s3s::S3ErrorCode::Custom(HEAD_TOO_LARGE.into()),
        head_too_large_message(),
    );
    err.set_status_code(http::StatusCode::BAD_REQUEST);
    Err(err)
}

const HEAD_TOO_LARGE: &str = "RequestHeaderSectionTooLarge";

fn head_too_large_message() -> String {
    format!("Your request header section exceeds the maximum allowed size of {MAX_HEAD} bytes.")
}

/// The XML error body for a head too large for the HTTP layer's buffer (the server writes it
/// in place of hyper's bare 431): the same code and message as `check_head`'s.
pub fn head_too_large_body(request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{HEAD_TOO_LARGE}</Code>\
         <Message>{}</Message><RequestId>{request_id}</RequestId></Error>",
        head_too_large_message()
    )
}

/// Refuses U+0000 (`%00`) in the path or query: PostgreSQL text cannot hold it, so such a key,
/// prefix or marker could be neither stored nor looked up there; refused on SQLite alike so
/// both backends answer the same. (Values from headers and bodies are checked by the engine.)
fn check_no_nul(uri: &http::Uri) -> Result<(), S3Error> {
    let target = uri.path_and_query().map_or("", |p| p.as_str());
    if !target.contains("%00") {
        return Ok(());
    }
    Err(s3_error!(
        InvalidArgument,
        "U+0000 (NUL) is not supported in object keys or request parameters."
    ))
}

/// An empty `Content-MD5` is an invalid digest to S3 (400 InvalidDigest); s3s reads an empty
/// header as an absent one, and the body would be stored unchecked.
fn check_content_md5<B>(req: &http::Request<B>) -> Result<(), S3Error> {
    let empty = req
        .headers()
        .get_all("content-md5")
        .iter()
        .any(|v| v.as_bytes().trim_ascii().is_empty());
    if !empty {
        return Ok(());
    }
    Err(s3_error!(
        InvalidDigest,
        "The Content-MD5 you specified was invalid."
    ))
}

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

fn form_urlencoded_pairs(q: &str) -> impl Iterator<Item = (&str, &str)> {
    q.split('&').map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Whether the body is aws-chunked framing (signed or unsigned streaming payloads).
pub fn is_aws_chunked<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"))
}

/// Watches aws-chunked framing go by and fails the body as soon as a chunk header announces
/// more than `MAX_CHUNK` bytes. It never buffers: data bytes are skipped by count.
pub struct ChunkCap<B> {
    inner: B,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Reading a chunk header line; `line` holds its bytes so far.
    Header { line: Vec<u8> },
    /// Skipping `left` data bytes plus the CRLF after them.
    Data { left: u64 },
    /// The last chunk was seen; trailers follow and are not ours to check.
    Done,
}

impl<B> ChunkCap<B> {
    pub fn new(inner: B) -> Self {
        ChunkCap {
            inner,
            state: State::Header { line: Vec::new() },
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("ChunkTooLarge: an aws-chunked chunk exceeds {MAX_CHUNK} bytes")]
pub struct ChunkTooLarge;

#[derive(Debug, thiserror::Error)]
#[error("FormatError: malformed aws-chunked header")]
pub struct BadChunkHeader;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl State {
    /// Advances over `data`; errors when the framing is over the limit or unreadable.
    fn feed(&mut self, mut data: &[u8]) -> Result<(), BoxError> {
        while !data.is_empty() {
            match self {
                State::Done => return Ok(()),
                State::Data { left } => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        *self = State::Header { line: Vec::new() };
                    }
                }
                State::Header { line } => {
                    let Some(pos) = data.iter().position(|b| *b == b'\n') else {
                        line.extend_from_slice(data);
                        if line.len() > MAX_CHUNK_LINE {
                            return Err(BadChunkHeader.into());
                        }
                        return Ok(());
                    };
                    line.extend_from_slice(&data[..pos]);
                    data = &data[pos + 1..];
                    let text = std::str::from_utf8(line).map_err(|_| BadChunkHeader)?;
                    let text = text.trim_end_matches('\r');
                    // The CRLF that ends the previous chunk's data shows up as an empty line.
                    if text.is_empty() {
                        line.clear();
                        continue;
                    }
                    let hex = text.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(hex, 16).map_err(|_| BadChunkHeader)?;
                    if size > MAX_CHUNK {
                        return Err(ChunkTooLarge.into());
                    }
                    *self = if size == 0 {
                        State::Done
                    } else {
                        State::Data { left: size }
                    };
                }
            }
        }
        Ok(())
    }
}

impl<B> Body for ChunkCap<B>
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
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.state.feed(data.chunk())?;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], split: usize) -> Result<(), BoxError> {
        let mut st = State::Header { line: Vec::new() };
        for piece in input.chunks(split.max(1)) {
            st.feed(piece)?;
        }
        Ok(())
    }

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

    #[test]
    fn accepts_framing_in_any_split() {
        let mut body = b"4;chunk-signature=abc\r\nwiki\r\n5\r\npedia\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n".to_vec();
        for split in [1, 2, 3, 7, 100] {
            run(&body, split).unwrap();
        }
        body.extend_from_slice(b"anything after the last chunk is trailer");
        run(&body, 5).unwrap();
    }

    #[test]
    fn rejects_oversized_and_malformed_chunks() {
        let big = format!("{:x}\r\n", MAX_CHUNK + 1);
        let err = run(big.as_bytes(), 3).unwrap_err();
        assert!(err.to_string().contains("ChunkTooLarge"));
        assert!(run(b"zz\r\n", 1).is_err());
        assert!(run(&vec![b'1'; MAX_CHUNK_LINE + 10], 64).is_err());
        let ok = format!("{:x}\r\n", MAX_CHUNK);
        run(ok.as_bytes(), 2).unwrap();
    }
}
