//! S3-compatible object storage as a `Backend` (issue 14), through Apache Arrow's `object_store`
//! (SigV4 signing, conditional puts). `s3://BUCKET[/PREFIX]` names the bucket and the prefix
//! every key lives under; credentials, region and endpoint come from the standard `AWS_*`
//! variables and the shared files' profile (`aws_profile`), with `AWS_ENDPOINT_URL` (or a
//! profile's `endpoint_url`) for self-hosted servers, which are then addressed path-style and may
//! use `http://`.
//!
//! Contract, as every backend: `put` is one PUT (atomic in S3: readers see the old object or the
//! new one); `put_new` is a conditional PUT (`If-None-Match: *`), refused with `Exists` when the key
//! is taken, which is what manifests, records and locks rely on (a store that ignores the
//! condition must be refused before use: `keygen` probes it); `list` is by string prefix, sorted
//! (a raw S3 prefix listing, page by page, so `index/<txn>-` costs what that transaction stored);
//! `delete` of a missing key succeeds (S3's DELETE does). There are no partial uploads to clean:
//! packs are single PUTs, never multipart.
//!
//! Retries live in one layer. Repositories open this backend with one attempt per request
//! (`attempts: Some(1)`: object_store's own retries off) and wrap it in `retry::Retrying`
//! (`ARCHIVER_RETRIES`, exponential backoff with jitter, `Retry-After`), so attempts do not
//! multiply. Not object_store's layer: it does not retry a conditional PUT whose request failed
//! to send (it cannot tell whether it landed), which a cut connection mid-pack makes common; ours
//! can, because a retried create that finds its own bytes is success (`Retrying::put_new`).
//! Errors are classified for it: 5xx, SlowDown, timeouts and failed connections are `Transient`. The request timeout lets a 16 MiB PUT finish at 1 Mbit/s. Secrets never reach
//! a message: errors name the operation and key, and object_store's error text, which carries
//! no credentials.

use super::{Backend, ErrorKind, StoreError, StoreResult};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};
use std::time::Duration;

/// Long enough for a 20 MiB pack at 1 Mbit/s (168 s), with room.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct S3Backend {
    store: AmazonS3,
    /// The key prefix (`PREFIX/`, or empty), with its trailing slash.
    prefix: String,
    url: String,
    rt: tokio::runtime::Runtime,
}

/// Splits `s3://BUCKET[/PREFIX]` into the bucket and the prefix (without slashes at its ends).
pub fn parse_url(url: &str) -> Result<(String, String)> {
    let Some(rest) = url.strip_prefix("s3://") else { bail!("{url:?} is not an s3://BUCKET[/PREFIX] URL") };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid {
        bail!("repository URL {url}: {bucket:?} is not a valid bucket name (3 to 63 lowercase letters, digits, '-' or '.')");
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|s| s.is_empty() || s == "." || s == "..") && !prefix.is_empty() {
        bail!("repository URL {url}: the prefix {prefix:?} has an empty, '.' or '..' segment");
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

impl S3Backend {
    /// The bucket and prefix `url` names, configured from the `AWS_*` variables and the shared
    /// files' profile (`aws_profile`: variables win). Makes no request.
    pub fn open(url: &str, attempts: Option<u32>) -> Result<S3Backend> {
        let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty());
        let mut builder = AmazonS3Builder::from_env();
        let profile = super::aws_profile::load()?.unwrap_or_default();
        if !set("AWS_ACCESS_KEY_ID") {
            if let (Some(id), Some(secret)) = (&profile.access_key_id, &profile.secret_access_key) {
                builder = builder.with_access_key_id(id).with_secret_access_key(secret);
                if let Some(token) = &profile.session_token {
                    builder = builder.with_token(token);
                }
            }
        }
        if !set("AWS_REGION") && !set("AWS_DEFAULT_REGION") {
            builder = builder.with_region(profile.region.as_deref().unwrap_or("us-east-1"));
        }
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .or_else(|_| std::env::var("AWS_ENDPOINT"))
            .ok()
            .filter(|e| !e.is_empty())
            .or(profile.endpoint_url);
        Self::open_with(url, attempts, builder, endpoint.as_deref())
    }

    /// `open` with the credentials and region of `builder`, at `endpoint` if given.
    pub fn open_with(
        url: &str,
        attempts: Option<u32>,
        builder: AmazonS3Builder,
        endpoint: Option<&str>,
    ) -> Result<S3Backend> {
        let (bucket, prefix) = parse_url(url)?;
        // reqwest is built without a default TLS crypto provider: ring, as everywhere in the crate.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Client options first: setting them replaces any set before (allow_http included).
        let options =
            ClientOptions::new().with_timeout(REQUEST_TIMEOUT).with_connect_timeout(CONNECT_TIMEOUT);
        let mut builder = builder.with_client_options(options).with_bucket_name(&bucket);
        if let Some(e) = endpoint {
            // Self-hosted servers (MinIO, Ceph, Garage, ...): path-style, and http:// allowed.
            builder = builder.with_endpoint(e).with_virtual_hosted_style_request(false).with_allow_http(true);
        }
        let retry = RetryConfig {
            max_retries: attempts.map_or(usize::MAX, |n| n.saturating_sub(1) as usize),
            retry_timeout: Duration::from_secs(if attempts.is_none() { u64::MAX / 4 } else { 180 }),
            ..RetryConfig::default()
        };
        let store = builder
            .with_retry(retry)
            .build()
            .map_err(|e| anyhow::anyhow!("repository {url}: {}", one_line(&e.to_string())))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the S3 client's runtime")?;
        let prefix = if prefix.is_empty() { prefix } else { format!("{prefix}/") };
        Ok(S3Backend { store, prefix, url: url.to_string(), rt })
    }

    fn path(&self, key: &str) -> Path {
        Path::from(format!("{}{key}", self.prefix))
    }

    fn fail(&self, what: &str, key: &str, e: object_store::Error) -> StoreError {
        let text = e.to_string();
        // The service's own error code first: a 403 may mean a full bucket (QuotaExceeded).
        let by_code = code_of(&text).and_then(|c| match c {
            "QuotaExceeded" => Some(ErrorKind::NoSpace),
            c => super::kind_of_code(c),
        });
        let kind = match (&e, by_code) {
            (_, Some(kind)) => kind,
            (object_store::Error::NotFound { .. }, _) => ErrorKind::NotFound,
            (object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }, _) => {
                ErrorKind::Exists
            }
            (
                object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. },
                _,
            ) => ErrorKind::Permanent,
            // One attempt was made (see above): `Retrying` retries what is transient.
            _ => kind_of_text(&text),
        };
        let why = explain(&text).unwrap_or_else(|| one_line(&text));
        StoreError::new(kind, format!("{what} {key} in {}: {why}", self.url))
    }

    fn put_mode(&self, key: &str, data: &[u8], mode: PutMode, what: &str) -> StoreResult<()> {
        let payload = PutPayload::from_bytes(Bytes::copy_from_slice(data));
        let opts = PutOptions { mode, ..PutOptions::default() };
        let r = self.rt.block_on(self.store.put_opts(&self.path(key), payload, opts));
        r.map(|_| ()).map_err(|e| self.fail(what, key, e))
    }
}

/// The kind an error object_store gave up on means, from its text (it carries the S3 error code
/// and the HTTP status as text, not as types): the code's kind (`kind_of_code`) if it names one,
/// else by status (5xx other than 501, 408 and 429 are worth retrying), else a failure to
/// connect or a timeout is transient and anything else permanent.
/// What to tell the user for the S3 error codes that mean the credentials are wrong or lack a
/// permission (the service's code and message kept, the request's details left out; no
/// secret is ever part of object_store's error text).
fn explain(text: &str) -> Option<String> {
    let code = code_of(text)?;
    let message = text
        .split_once("<Message>")
        .and_then(|(_, rest)| rest.split_once("</Message>"))
        .map_or(String::new(), |(m, _)| format!(": {}", one_line(m)));
    let bad_credentials = [
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "NotSignedUp",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
    ];
    if bad_credentials.contains(&code) {
        return Some(format!(
            "the S3 service refused the credentials ({code}{message}); check AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or AWS_PROFILE"
        ));
    }
    if code == "AccessDenied" {
        return Some(format!(
            "the S3 service denied access ({code}{message}); the credentials need to list, read, \
             write and delete objects under the repository's prefix"
        ));
    }
    None
}

/// The `<Code>` of an S3 error answer quoted in `text`, if any.
fn code_of(text: &str) -> Option<&str> {
    text.split_once("<Code>").and_then(|(_, rest)| rest.split_once("</Code>")).map(|(c, _)| c)
}

fn kind_of_text(text: &str) -> ErrorKind {
    let code = code_of(text);
    if let Some(kind) = code.and_then(super::kind_of_code) {
        return kind;
    }
    if code == Some("QuotaExceeded") {
        return ErrorKind::NoSpace;
    }
    let status = text.split_once("status code: ").and_then(|(_, rest)| rest.get(..3)?.parse::<u16>().ok());
    match status {
        Some(501) => ErrorKind::Permanent,
        Some(408 | 429 | 500..=599) => ErrorKind::Transient,
        Some(_) => ErrorKind::Permanent,
        // What reqwest and hyper say of a connection cut or reset mid-request or mid-answer.
        None if [
            "timed out",
            "timeout",
            "connection",
            "error sending request",
            "body error",
            "error decoding response body",
            "reset by peer",
            "broken pipe",
            "incomplete message",
            "unexpected eof",
        ]
        .iter()
        .any(|t| text.to_ascii_lowercase().contains(t)) =>
        {
            ErrorKind::Transient
        }
        None => ErrorKind::Permanent,
    }
}

/// `text` on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Backend for S3Backend {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn put(&self, key: &str, data: &[u8]) -> StoreResult<()> {
        self.put_mode(key, data, PutMode::Overwrite, "storing")
    }

    fn put_new(&self, key: &str, data: &[u8]) -> StoreResult<()> {
        self.put_mode(key, data, PutMode::Create, "creating")
    }

    fn get(&self, key: &str) -> StoreResult<Vec<u8>> {
        let r = self.rt.block_on(async {
            let got = self.store.get(&self.path(key)).await?;
            got.bytes().await
        });
        r.map(|b| b.to_vec()).map_err(|e| self.fail("reading", key, e))
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        let Some(end) = offset.checked_add(len) else {
            return Err(StoreError::new(ErrorKind::Permanent, format!("reading {key}: range past 2^64")));
        };
        if len == 0 {
            // A zero-length range is no HTTP range: check the bounds by the size.
            let size = self.size(key)?;
            return match offset <= size {
                true => Ok(Vec::new()),
                false => Err(StoreError::new(
                    ErrorKind::Permanent,
                    format!("reading {key}: offset {offset} past its end"),
                )),
            };
        }
        let r = self.rt.block_on(self.store.get_range(&self.path(key), offset..end));
        match r {
            Ok(b) if b.len() as u64 == len => Ok(b.to_vec()),
            Ok(b) => Err(StoreError::new(
                ErrorKind::Permanent,
                format!("reading {key}: {len} bytes at {offset} asked, {} returned (past its end)", b.len()),
            )),
            Err(e) => Err(self.fail("reading", key, e)),
        }
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        // S3 lists by string prefix: `index/<txn>-` lists that transaction's segments, not the
        // whole index/ folder (object_store's `list` would, by path segments). One request per
        // thousand keys.
        let full = format!("{}{prefix}", self.prefix);
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let opts = PaginatedListOptions { page_token: token.take(), ..Default::default() };
            let r =
                self.rt.block_on(self.store.list_paginated((!full.is_empty()).then_some(&full[..]), opts));
            let page = r.map_err(|e| self.fail("listing", prefix, e))?;
            keys.extend(
                (page.result.objects.into_iter())
                    .filter_map(|m| m.location.as_ref().strip_prefix(&self.prefix).map(String::from))
                    .filter(|k| k.starts_with(prefix)),
            );
            match page.page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn delete(&self, key: &str) -> StoreResult<()> {
        match self.rt.block_on(self.store.delete(&self.path(key))) {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.fail("deleting", key, e)),
        }
    }

    fn size(&self, key: &str) -> StoreResult<u64> {
        let r = self.rt.block_on(self.store.head(&self.path(key)));
        r.map(|m| m.size).map_err(|e| self.fail("reading the size of", key, e))
    }

    fn clean_partial(&self) -> StoreResult<()> {
        Ok(()) // single PUTs only: nothing partial is ever visible
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_a_clean_prefix() {
        assert_eq!(parse_url("s3://backups").unwrap(), ("backups".into(), "".into()));
        assert_eq!(parse_url("s3://backups/host/a/").unwrap(), ("backups".into(), "host/a".into()));
        for bad in
            ["s3://", "s3://A", "s3://ab", "s3://b_d", "s3://bucket/a//b", "s3://bucket/../x", "http://x/y"]
        {
            let err = parse_url(bad).unwrap_err().to_string();
            assert!(!err.contains('\n'), "{bad}: {err}");
        }
    }

    #[test]
    fn errors_object_store_gave_up_on_are_classified() {
        let answer = |status: &str, code: &str| {
            format!("Server returned non-2xx status code: {status}: <Error><Code>{code}</Code></Error>")
        };
        assert_eq!(kind_of_text(&answer("503 Service Unavailable", "SlowDown")), ErrorKind::Transient);
        assert_eq!(kind_of_text(&answer("404 Not Found", "NoSuchBucket")), ErrorKind::Permanent);
        assert_eq!(kind_of_text(&answer("403 Forbidden", "QuotaExceeded")), ErrorKind::NoSpace);
        assert_eq!(kind_of_text(&answer("502 Bad Gateway", "Other")), ErrorKind::Transient);
        assert_eq!(kind_of_text(&answer("416 Range Not Satisfiable", "InvalidRange")), ErrorKind::Permanent);
        assert_eq!(
            kind_of_text("Server returned non-2xx status code: 400 Bad Request: "),
            ErrorKind::Permanent
        );
        assert_eq!(kind_of_text("error sending request"), ErrorKind::Transient);
        assert_eq!(kind_of_text("HTTP error: request or response body error"), ErrorKind::Transient);
        let refused = explain(&answer("403 Forbidden", "SignatureDoesNotMatch")).unwrap();
        assert!(refused.contains("refused the credentials (SignatureDoesNotMatch)"), "{refused}");
        assert!(explain(&answer("403 Forbidden", "AccessDenied")).unwrap().contains("denied access"));
        assert_eq!(explain(&answer("503 Service Unavailable", "SlowDown")), None);
        // Numbers in a message are not statuses.
        assert_eq!(
            kind_of_text("Wanted range starting at 5000, but object was only 500 bytes long"),
            ErrorKind::Permanent
        );
    }
}
