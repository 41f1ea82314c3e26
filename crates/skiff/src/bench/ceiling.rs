//! The ceiling over read throughput on this machine (`--reads`): as many
//! servers as Skiff's that answer every request at once with the file the
//! clients read, and do nothing else, measured with the same clients,
//! connections, requests and answers as Skiff's reads. No read path can
//! answer faster over the same connections on the same cores, so Skiff's
//! reads are printed as a share of the ceiling, and the ceiling over the
//! writes says how many times the writes any read path could reach here.
//!
//! The servers run in the bench's process, on a runtime of their own with
//! two worker threads, so that their CPU time is counted in the bench's
//! column. Each answers one answer per request line it receives, without
//! parsing it: the readers send nothing but `read <name>`.

use bytes::Bytes;
use skiff_fs::{Response, Version};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Worker threads of the servers' runtime, as a node's own runtime has on
/// a 2-core machine.
const WORKER_THREADS: usize = 2;
/// Bytes read from a connection at once.
const READ_BYTES: usize = 4096;

/// The running servers; dropping them stops them.
pub struct CeilingServers {
    runtime: Option<tokio::runtime::Runtime>,
    addresses: Vec<String>,
}

impl CeilingServers {
    /// Starts `count` servers on loopback, each answering every request
    /// line with `contents` as a file's contents.
    pub fn start(count: usize, contents: Bytes) -> std::io::Result<CeilingServers> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("skiff-bench-ceiling")
            .enable_io()
            .build()?;
        let mut answer = Vec::new();
        Response::Contents {
            version: Version(1),
            contents,
            exptime_s: 0,
        }
        .encode(&mut answer);
        let answer: Arc<[u8]> = answer.into();
        let mut addresses = Vec::new();
        for _ in 0..count {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.set_nonblocking(true)?;
            addresses.push(listener.local_addr()?.to_string());
            let _guard = runtime.enter();
            let listener = TcpListener::from_std(listener)?;
            runtime.spawn(accept(listener, answer.clone()));
        }
        Ok(CeilingServers {
            runtime: Some(runtime),
            addresses,
        })
    }

    /// The servers' client addresses.
    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }
}

impl Drop for CeilingServers {
    fn drop(&mut self) {
        // Dropped from async code, where a blocking shutdown would panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Serves every connection `listener` accepts.
async fn accept(listener: TcpListener, answer: Arc<[u8]>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve(stream, answer.clone()));
    }
}

/// Answers each request line on `stream` with `answer`, until it closes.
async fn serve(mut stream: TcpStream, answer: Arc<[u8]>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = [0u8; READ_BYTES];
    let mut out = Vec::new();
    loop {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        // A request ends with its line's `\n`; a request cut between two
        // reads is answered when its end arrives.
        let requests = buffer[..read].iter().filter(|&&b| b == b'\n').count();
        out.clear();
        for _ in 0..requests {
            out.extend_from_slice(&answer);
        }
        stream.write_all(&out).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_request_line_is_answered_with_the_file() {
        let servers = CeilingServers::start(2, Bytes::from_static(b"abc")).unwrap();
        assert_eq!(servers.addresses().len(), 2);
        let config = skiff_fs::ClientConfig::new(servers.addresses().iter().cloned());
        let mut client = skiff_fs::Client::new(config);
        for _ in 0..3 {
            let file = client.read("bench-0").await.unwrap();
            assert_eq!(&file.contents[..], b"abc");
        }
        // Two requests in one segment get two answers.
        let mut raw = TcpStream::connect(&servers.addresses()[1]).await.unwrap();
        raw.write_all(b"read a\r\nread b\r\n").await.unwrap();
        let mut answer = Vec::new();
        let expected = b"CONTENTS 1 3 0\r\nabc\r\n".repeat(2);
        while answer.len() < expected.len() {
            let mut chunk = [0u8; 64];
            let read = raw.read(&mut chunk).await.unwrap();
            assert!(read > 0, "closed after {answer:?}");
            answer.extend_from_slice(&chunk[..read]);
        }
        assert_eq!(answer, expected);
    }
}
