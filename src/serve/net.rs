//! The server's HTTP side: connections, TLS and HTTP/1.1 (hyper on a tokio runtime). For each
//! request it checks the head (`admit`, on a blocking thread: it reads the repository config),
//! then reads the body under the route's limit and timeouts, then hands the whole request to
//! `handle` on a blocking thread and sends back its reply; a request without a body is admitted
//! and handled in the same blocking task.
//!
//! Connections are kept alive, so a client pays for TCP (and TLS) setup once per connection,
//! not once per request, and an idle connection costs a task, not a thread. They are held under
//! a cap with room made by closing connections that never sent a signed request (`conns`), so
//! no number of idle or trickling connections from peers without a key keeps a client out. A
//! body is refused before it is read when its head is not signed (401) or its declared length
//! is over the route's limit (413), and cut (408) when it stalls for `--body-timeout` or
//! trickles in slower than `limits::BODY_FLOOR` after that. A reply goes out as one buffer with
//! its length; a peer that stops reading it for `limits::WRITE_TIMEOUT` loses its connection. A
//! request whose handler panics gets 500 and the server goes on; a peer that disappears
//! mid-request only ends its own connection.

use super::admit::{admit, Admitted, Head};
use super::conns::{Conns, Slot, Stall};
use super::{handle, Incoming, Reply, State};
use crate::progress::{Event, Progress};
use crate::repo::limits::{trickling, BODY_FLOOR, HEAD_TIMEOUT, WRITE_TIMEOUT};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming as Body;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Threads handling requests at once (disk work): few enough that their open files fit in the
/// descriptors the connection cap leaves.
const HANDLER_THREADS: usize = 32;

/// Listens on `listen` and serves until the process is stopped, holding at most `cap`
/// connections. Reports the address first.
pub fn run(
    listen: &str,
    tls: Option<(&Path, &Path)>,
    state: Arc<State>,
    cap: usize,
    progress: Progress,
) -> Result<()> {
    let acceptor = tls.map(|(cert, key)| tls_acceptor(cert, key)).transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("serve")
        .max_blocking_threads(HANDLER_THREADS)
        .build()
        .context("cannot start the server's threads")?;
    let conns = Arc::new(Conns::new(cap));
    runtime.block_on(async move {
        let listener =
            TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| listen.to_string());
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        progress(Event::Notice(format!("serving {} on {scheme}://{addr}/", state.repos.describe())));
        if acceptor.is_none() {
            progress(Event::Notice(
                "plain HTTP: requests are signed and data is encrypted, but names and sizes are visible on the network; give --tls-cert and --tls-key to serve HTTPS".into(),
            ));
        }
        let mut last_full: Option<Instant> = None;
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, say: wait for connections to close, then go on.
                    progress(Event::Notice(format!("cannot accept a connection: {e}; retrying in a second")));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let Some(slot) = conns.admit(peer.ip()) else {
                // Every place is held by a client that signed a request: turn this one away.
                if last_full.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    last_full = Some(Instant::now());
                    progress(Event::Notice(format!(
                        "holding {} connections from clients with keys, the most this server holds; new connections are closed until some end",
                        conns.cap()
                    )));
                }
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (state, acceptor) = (state.clone(), acceptor.clone());
            tokio::spawn(async move {
                let slot = Arc::new(slot);
                let closer = slot.clone();
                let serve = async move {
                    match acceptor {
                        None => connection(tcp, state, slot).await,
                        Some(acceptor) => {
                            if let Ok(Ok(tls)) = tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(tcp)).await {
                                connection(tls, state, slot).await
                            }
                        }
                    }
                };
                // Dropping the connection closes it (a request being handled still completes).
                let (mut serve, mut closed) = (std::pin::pin!(serve), std::pin::pin!(closer.closed()));
                std::future::poll_fn(|cx| match serve.as_mut().poll(cx) {
                    std::task::Poll::Ready(()) => std::task::Poll::Ready(()),
                    std::task::Poll::Pending => closed.as_mut().poll(cx),
                })
                .await;
            });
        }
    })
}

/// Serves one connection's requests until the peer closes it (or breaks the protocol).
async fn connection<S>(stream: S, state: Arc<State>, slot: Arc<Slot>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| respond(req, state.clone(), slot.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(TokioIo::new(Stall::new(stream, WRITE_TIMEOUT)), service)
        .await;
}

/// One request: admitted on its head, its body read, handled on a blocking thread, answered
/// with its length. A request without a body (every read) is admitted and handled in one
/// blocking task: one hand-off between threads instead of two, which on a busy machine is a
/// scheduler wait saved per request.
async fn respond(
    req: Request<Body>,
    state: Arc<State>,
    slot: Arc<Slot>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    use hyper::body::Body as _;
    let head_only = req.method() == hyper::Method::HEAD;
    let (parts, mut body) = req.into_parts();
    let head = head_of(&parts);
    let failed = || Reply::text(500, "internal error while handling the request (see the server's log)");
    let reply = if body.is_end_stream() {
        let (st, slot) = (state.clone(), slot.clone());
        tokio::task::spawn_blocking(move || match admit(&st, &head) {
            Ok(Admitted { signed, .. }) => {
                if signed.is_some() {
                    slot.trust();
                }
                handle(&st, incoming(head, Vec::new(), signed))
            }
            Err(reply) => reply,
        })
        .await
        .unwrap_or_else(|_| failed())
    } else {
        match receive(head, &mut body, &state, &slot).await {
            Ok(incoming) => {
                let state = state.clone();
                tokio::task::spawn_blocking(move || handle(&state, incoming))
                    .await
                    .unwrap_or_else(|_| failed())
            }
            Err(reply) => reply,
        }
    };
    let reply = if head_only { Reply { body: Vec::new(), ..reply } } else { reply };
    let mut resp = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        resp = resp.header(*k, v);
    }
    if reply.status >= 400 {
        resp = resp.header("Content-Type", "text/plain; charset=utf-8");
    }
    Ok(resp.body(Full::new(Bytes::from(reply.body))).unwrap_or_else(|_| {
        let mut r = Response::new(Full::new(Bytes::from_static(b"cannot encode the reply")));
        *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        r
    }))
}

/// The request's method, path and the headers routes use.
fn head_of(parts: &hyper::http::request::Parts) -> Head {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(String::from);
    Head {
        method: parts.method.as_str().to_string(),
        url: parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into()),
        token: header("X-Archiver-Lock"),
        range: header("Range"),
        auth: header(crate::access::HEADER),
        txn_key: header(crate::repo::http::TXN_KEY),
        declared: header("Content-Length").and_then(|v| v.parse::<u64>().ok()),
    }
}

fn incoming(head: Head, body: Vec<u8>, signed: Option<crate::access::Perm>) -> Incoming {
    let Head { method, url, token, range, auth, txn_key, .. } = head;
    Incoming { method, url, token, range, auth, txn_key, body, signed }
}

/// Admits a request with a body on its head, then reads the body, only once the head was
/// admitted, under the route's limit and the body timeouts.
async fn receive(head: Head, body: &mut Body, state: &Arc<State>, slot: &Slot) -> Result<Incoming, Reply> {
    let st = state.clone();
    let (head, admitted) = tokio::task::spawn_blocking(move || {
        let admitted = admit(&st, &head);
        (head, admitted)
    })
    .await
    .map_err(|_| Reply::text(500, "internal error while checking the request (see the server's log)"))?;
    let Admitted { limit, signed } = admitted?;
    if signed.is_some() {
        slot.trust();
    }
    let body = read_body(body, limit, head.declared, state.body_timeout).await?;
    Ok(incoming(head, body, signed))
}

/// Reads a body of at most `limit` bytes (sized from Content-Length up front, so a pack is not
/// grown by doubling): 413 beyond the limit, 408 when it sends nothing for `timeout` or averages
/// less than `BODY_FLOOR` bytes a second after the first `timeout`.
async fn read_body(
    body: &mut Body,
    limit: u64,
    declared: Option<u64>,
    timeout: Duration,
) -> Result<Vec<u8>, Reply> {
    let too_big = || {
        Reply::text(
            413,
            format!("this request's body is limited to {limit} bytes ({} MiB)", limit as f64 / 1048576.0),
        )
    };
    let cut = |why: &str| Reply::text(408, format!("the request body {why}; send it again"));
    let mut data = Vec::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    let start = Instant::now();
    loop {
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => return Err(cut(&format!("sent nothing for {} s", timeout.as_secs_f64()))),
            Ok(None) => break,
            Ok(Some(frame)) => {
                frame.map_err(|e| Reply::text(400, format!("cannot read the request body: {e}")))?
            }
        };
        if let Ok(chunk) = frame.into_data() {
            if (data.len() + chunk.len()) as u64 > limit {
                return Err(too_big());
            }
            data.extend_from_slice(&chunk);
        }
        if trickling(data.len() as u64, start.elapsed(), timeout, BODY_FLOOR) {
            return Err(cut(&format!("arrived slower than {} KiB/s", BODY_FLOOR >> 10)));
        }
    }
    Ok(data)
}

/// The TLS side from a PEM certificate chain and private key, each checked with a one-line
/// error naming what is wrong.
fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let read = |p: &Path, what: &str| {
        std::fs::read(p).with_context(|| format!("cannot read the TLS {what} {}", p.display()))
    };
    let (cert_pem, key_pem) = (read(cert, "certificate")?, read(key, "private key")?);
    let chain: Vec<CertificateDer> =
        CertificateDer::pem_slice_iter(&cert_pem).filter_map(|r| r.ok()).collect();
    if chain.is_empty() {
        anyhow::bail!("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", cert.display());
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        anyhow::anyhow!(
            "{} holds no unencrypted private key in PEM (-----BEGIN PRIVATE KEY-----)",
            key.display()
        )
    })?;
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("cannot set up TLS")?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| {
                anyhow::anyhow!(
                    "{} and {} do not make a usable TLS identity: {e}",
                    cert.display(),
                    key.display()
                )
            })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
