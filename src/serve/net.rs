//! The server's HTTP side: connections, TLS and HTTP/1.1 (hyper on a tokio runtime), handing
//! each whole request to `handle` on a blocking thread and sending back its reply.
//!
//! Connections are kept alive, so a client pays for TCP (and TLS) setup once per connection,
//! not once per request, and an idle connection costs a task, not a thread: any number of
//! clients can hold connections open without starving others. A request's body is read whole
//! (up to `MAX_BODY`) before it is handled, so the signature over it can be checked first; the
//! reply goes out as one buffer with its length. A request whose handler panics gets 500 and the
//! server goes on; a peer that disappears mid-request only ends its own connection.

use super::{handle, Incoming, Reply, State};
use crate::progress::{Event, Progress};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming as Body;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Largest request body accepted: a pack (16 MiB target plus its last block) with room to spare.
pub const MAX_BODY: u64 = 256 << 20;
/// A connection that sends no complete request head for this long is closed; so is a TLS
/// handshake that takes longer.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Listens on `listen` and serves until the process is stopped. Reports the address first.
pub fn run(listen: &str, tls: Option<(&Path, &Path)>, state: Arc<State>, progress: Progress) -> Result<()> {
    let acceptor = tls.map(|(cert, key)| tls_acceptor(cert, key)).transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("serve")
        .build()
        .context("cannot start the server's threads")?;
    runtime.block_on(async move {
        let listener =
            TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| listen.to_string());
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        progress(Event::Notice(format!("serving {} on {scheme}://{addr}/", state.store.display())));
        if acceptor.is_none() {
            progress(Event::Notice(
                "plain HTTP: requests are signed and data is encrypted, but names and sizes are visible on the network; give --tls-cert and --tls-key to serve HTTPS".into(),
            ));
        }
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, say: wait for connections to close, then go on.
                    progress(Event::Notice(format!("cannot accept a connection: {e}; retrying in a second")));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (state, acceptor) = (state.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    None => connection(tcp, state).await,
                    Some(acceptor) => {
                        if let Ok(Ok(tls)) = tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(tcp)).await {
                            connection(tls, state).await
                        }
                    }
                }
            });
        }
    })
}

/// Serves one connection's requests until the peer closes it (or breaks the protocol).
async fn connection<S>(stream: S, state: Arc<State>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| respond(req, state.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// One request: read whole, handled on a blocking thread, answered with its length.
async fn respond(
    req: Request<Body>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let reply = match read(req).await {
        Ok(incoming) => {
            let head = incoming.method == "HEAD";
            match tokio::task::spawn_blocking(move || handle(&state, incoming)).await {
                Ok(reply) if head => Reply { body: Vec::new(), ..reply },
                Ok(reply) => reply,
                Err(_) => {
                    Reply::text(500, "internal error while handling the request (see the server's log)")
                }
            }
        }
        Err(reply) => reply,
    };
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

/// The request's method, path, the headers routes use, and its whole body (sized from
/// Content-Length up front, so a pack is not grown by doubling).
async fn read(req: Request<Body>) -> Result<Incoming, Reply> {
    let (parts, mut body) = req.into_parts();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(String::from);
    let declared = header("Content-Length").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let too_big = || Reply::text(413, format!("request bodies are limited to {} MiB", MAX_BODY >> 20));
    if declared > MAX_BODY {
        return Err(too_big());
    }
    let mut data = Vec::with_capacity(declared as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Reply::text(400, format!("cannot read the request body: {e}")))?;
        if let Ok(chunk) = frame.into_data() {
            if (data.len() + chunk.len()) as u64 > MAX_BODY {
                return Err(too_big());
            }
            data.extend_from_slice(&chunk);
        }
    }
    Ok(Incoming {
        method: parts.method.as_str().to_string(),
        url: parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into()),
        token: header("X-Archiver-Lock"),
        range: header("Range"),
        auth: header(crate::access::HEADER),
        txn_key: header(crate::repo::http::TXN_KEY),
        body: data,
    })
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
