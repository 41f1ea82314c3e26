//! A minimal HTTP/1.1 client for etcd's JSON gateway: one keep-alive
//! connection, one request at a time, answers framed by `Content-Length`.
//!
//! A general client (hyper, reqwest) would do, but this is all the bench
//! needs, and it keeps the client's cost per request to one write, one or
//! two reads and a header parse, so that the client is not what limits
//! etcd's figures (the bench reports its own CPU time per write to show it).

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Headers read from one answer at most.
const HEADERS_MAX: usize = 32;
/// The largest answer accepted, headers and body: etcd's answers to puts
/// and status requests are a few hundred bytes.
const ANSWER_BYTES_MAX: usize = 1 << 20;
/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 4096;

/// The bytes of a `POST` of the JSON `body` to `path` at `address`.
pub fn post_request(address: SocketAddr, path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// One keep-alive connection.
pub struct HttpConnection {
    stream: TcpStream,
    /// Bytes read but not yet part of an answer.
    buffer: Vec<u8>,
}

/// Where an answer's body lies in the buffer, once its headers are in.
struct Framing {
    status: u16,
    body_start: usize,
    body_end: usize,
}

impl HttpConnection {
    /// Connects to `address`, with Nagle's algorithm off as the targets do.
    pub async fn connect(address: SocketAddr) -> Result<HttpConnection, String> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(HttpConnection {
            stream,
            buffer: Vec::with_capacity(READ_CHUNK_BYTES),
        })
    }

    /// Sends `request` (a whole request, see [`post_request`]) and returns
    /// the answer's status and body.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<(u16, Vec<u8>), String> {
        self.stream
            .write_all(request)
            .await
            .map_err(|e| format!("sending: {e}"))?;
        loop {
            if let Some(framing) = frame(&self.buffer)? {
                if self.buffer.len() >= framing.body_end {
                    let body = self.buffer[framing.body_start..framing.body_end].to_vec();
                    self.buffer.drain(..framing.body_end);
                    return Ok((framing.status, body));
                }
            }
            if self.buffer.len() >= ANSWER_BYTES_MAX {
                return Err(format!("answer longer than {ANSWER_BYTES_MAX} bytes"));
            }
            self.buffer.reserve(READ_CHUNK_BYTES);
            let read = self
                .stream
                .read_buf(&mut self.buffer)
                .await
                .map_err(|e| format!("receiving: {e}"))?;
            if read == 0 {
                return Err("the server closed the connection".into());
            }
        }
    }
}

/// The status and body position of the answer at the start of `buffer`,
/// or `None` while its headers are incomplete.
fn frame(buffer: &[u8]) -> Result<Option<Framing>, String> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut answer = httparse::Response::new(&mut headers);
    let body_start = match answer.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed answer: {e}")),
    };
    let length = answer
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .ok_or("an answer without a Content-Length")?;
    Ok(Some(Framing {
        status: answer.code.unwrap_or(0),
        body_start,
        body_end: body_start.saturating_add(length),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_framed_by_its_content_length() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1";
        let framing = frame(answer).unwrap().unwrap();
        assert_eq!(framing.status, 200);
        assert_eq!(&answer[framing.body_start..framing.body_end], b"hello");
        assert!(frame(&answer[..20]).unwrap().is_none());
        let unframed = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(frame(unframed).is_err());
    }

    #[tokio::test]
    async fn answers_on_one_connection_are_read_in_turn() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let request = post_request(address, "/p", b"{}");
            let mut received = vec![0; request.len() * 2];
            stream.read_exact(&mut received).await.unwrap();
            assert_eq!(received, [request.clone(), request].concat());
            // Both answers in one write, the second body split from its headers.
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\n")
                .await
                .unwrap();
            stream.write_all(b"abc").await.unwrap();
        });
        let mut connection = HttpConnection::connect(address).await.unwrap();
        let request = post_request(address, "/p", b"{}");
        // Both requests go out before either answer is read.
        connection.stream.write_all(&request).await.unwrap();
        let first = connection.exchange(&request).await.unwrap();
        assert_eq!(first, (200, b"{}".to_vec()));
        let second = connection.exchange(&[]).await.unwrap();
        assert_eq!(second, (404, b"abc".to_vec()));
        server.await.unwrap();
    }
}
