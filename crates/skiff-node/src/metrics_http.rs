//! A minimal HTTP/1.1 responder for Prometheus: `GET /metrics` answers the
//! registry in the text format; every other path is 404, every other
//! method 405. One request per connection, then it closes.
//!
//! Bounded like every other listener of the node ([`MetricsHttpLimits`]):
//! at most so many connections at once (a new one past that is closed at
//! once), a request head of at most so many bytes, which must arrive within
//! the read timeout.

use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The path Prometheus scrapes.
pub const METRICS_PATH: &str = "/metrics";
/// Headers a request may carry.
const HEADERS_MAX: usize = 32;
/// The pause after a failed accept (out of descriptors), rather than a spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Bounds on the metrics listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsHttpLimits {
    /// Connections served at once; more are closed at once.
    pub connections_max: usize,
    /// The largest request head (request line and headers).
    pub request_bytes_max: usize,
    /// How long a request may take to arrive, and its answer to be taken.
    pub read_timeout: Duration,
}

impl Default for MetricsHttpLimits {
    /// A handful of scrapers, a head of 8 KiB, 5 s.
    fn default() -> MetricsHttpLimits {
        MetricsHttpLimits {
            connections_max: 16,
            request_bytes_max: 8 << 10,
            read_timeout: Duration::from_secs(5),
        }
    }
}

/// Serves `metrics` on `listener` until the task is dropped or aborted.
/// Call within a tokio runtime; `listener` must be non-blocking or is made so.
pub fn spawn_metrics_server(
    listener: std::net::TcpListener,
    metrics: Metrics,
    limits: MetricsHttpLimits,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    Ok(tokio::spawn(serve(listener, metrics, limits)))
}

async fn serve(listener: TcpListener, metrics: Metrics, limits: MetricsHttpLimits) {
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    let mut refused = 0u64;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accepting a metrics connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    event = "limit_hit",
                    limit = "metrics_connections_max",
                    connections_max = limits.connections_max,
                    refused,
                    "too many metrics connections; refusing"
                );
            }
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ =
                tokio::time::timeout(limits.read_timeout, answer(stream, &metrics, limits)).await;
            drop(slot);
        });
    }
}

/// Reads one request head and answers it.
async fn answer(
    mut stream: TcpStream,
    metrics: &Metrics,
    limits: MetricsHttpLimits,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024.min(limits.request_bytes_max));
    let mut chunk = [0u8; 1024];
    let (status, body) = loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..read]);
        if head.len() > limits.request_bytes_max {
            break ("431 Request Header Fields Too Large", String::new());
        }
        if let Some(answer) = route(&head, metrics) {
            break answer;
        }
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n{}\r\n",
        "text/plain; version=0.0.4; charset=utf-8",
        body.len(),
        if status.starts_with("405") { "allow: GET\r\n" } else { "" },
    );
    stream.write_all(response.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// The status and body for the request head in `head`, or `None` while it
/// is incomplete.
fn route(head: &[u8], metrics: &Metrics) -> Option<(&'static str, String)> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Partial) => None,
        Err(_) => Some(("400 Bad Request", String::new())),
        Ok(httparse::Status::Complete(_)) => {
            let path = request.path.unwrap_or("");
            // A query string (`?name[]=...`) is ignored: the whole registry answers.
            let path = path.split('?').next().unwrap_or(path);
            Some(match (request.method, path) {
                (_, p) if p != METRICS_PATH => ("404 Not Found", String::new()),
                (Some("GET"), _) => ("200 OK", metrics.encode()),
                _ => ("405 Method Not Allowed", String::new()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn start(limits: MetricsHttpLimits) -> std::net::SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        spawn_metrics_server(listener, Metrics::enabled(), limits).unwrap();
        address
    }

    async fn exchange(address: std::net::SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn get_metrics_answers_the_registry_and_nothing_else_does() {
        let address = start(MetricsHttpLimits::default()).await;
        let ok = exchange(address, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("skiff_term 0"), "{ok}");
        let length: usize = ok
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, ok.split_once("\r\n\r\n").unwrap().1.len());
        let missing = exchange(address, b"GET / HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let post = exchange(address, b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        assert!(post.contains("allow: GET"), "{post}");
        let bad = exchange(address, b"\x01\x02 nonsense\r\n\r\n").await;
        assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    }

    #[tokio::test]
    async fn a_head_past_the_limit_is_refused() {
        let limits = MetricsHttpLimits {
            request_bytes_max: 64,
            ..MetricsHttpLimits::default()
        };
        let address = start(limits).await;
        let long = format!(
            "GET /metrics HTTP/1.1\r\nX-Long: {}\r\n\r\n",
            "a".repeat(200)
        );
        let answer = exchange(address, long.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }

    #[tokio::test]
    async fn a_slow_request_is_closed_at_the_read_timeout() {
        let limits = MetricsHttpLimits {
            read_timeout: Duration::from_millis(50),
            ..MetricsHttpLimits::default()
        };
        let address = start(limits).await;
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        // The server closes without an answer: the read ends, empty.
        stream.read_to_end(&mut answer).await.unwrap();
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }

    #[tokio::test]
    async fn connections_past_the_maximum_are_closed_at_once() {
        let limits = MetricsHttpLimits {
            connections_max: 1,
            ..MetricsHttpLimits::default()
        };
        let address = start(limits).await;
        // The first holds the only slot by sending nothing.
        let _holder = TcpStream::connect(address).await.unwrap();
        let mut second = TcpStream::connect(address).await.unwrap();
        let _ = second.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await;
        let mut answer = Vec::new();
        let _ = second.read_to_end(&mut answer).await;
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }
}
