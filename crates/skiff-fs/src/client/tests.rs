use super::*;
use crate::protocol::{parse_client_message, ClientMessage, SessionMessage};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// What a scripted server does with one request.
#[derive(Clone, Debug)]
enum Reply {
    Answer(Response),
    /// Answer, then close the connection.
    AnswerAndClose(Response),
    /// Close the connection without answering.
    Close,
    /// Never answer.
    Hang,
}

/// A server on loopback that answers from a script and records requests.
/// Unless started `without_sessions`, it opens sessions with ids from 7
/// on; the script sees numbered requests as plain ones, and their sessions
/// are recorded beside them.
struct FakeServer {
    address: String,
    seen: Arc<Mutex<Seen>>,
    connections: Arc<AtomicUsize>,
}

/// What a fake server saw: requests, with their sessions if numbered,
/// and how many sessions it opened.
#[derive(Default)]
struct Seen {
    requests: Vec<Request>,
    sessions: Vec<Option<SessionSeq>>,
    opened: u64,
}

type Script = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

impl FakeServer {
    async fn start(script: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> FakeServer {
        FakeServer::start_with(false, true, script).await
    }

    /// A server of the classic protocol only: `session` is a malformed
    /// request to it.
    async fn without_sessions(
        script: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> FakeServer {
        FakeServer::start_with(false, false, script).await
    }

    /// A server that writes each answer one byte at a time when `trickle`.
    async fn start_with(
        trickle: bool,
        sessions: bool,
        script: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let script: Script = Arc::new(script);
        let recorded = seen.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let fake = Fake {
                    trickle,
                    sessions,
                    script: script.clone(),
                    seen: recorded.clone(),
                };
                tokio::spawn(serve(stream, fake));
            }
        });
        FakeServer {
            address,
            seen,
            connections,
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().requests.clone()
    }

    fn sessions(&self) -> Vec<Option<SessionSeq>> {
        self.seen.lock().unwrap().sessions.clone()
    }

    fn opened(&self) -> u64 {
        self.seen.lock().unwrap().opened
    }

    /// Connections accepted so far.
    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// How one fake server serves a connection.
struct Fake {
    trickle: bool,
    sessions: bool,
    script: Script,
    seen: Arc<Mutex<Seen>>,
}

/// Waits, on the stream rather than on a clock, until the server's close
/// has reached `connection` (a read that is ready: the close, or data).
async fn until_broken(connection: &mut Connection) {
    let mut byte = [0u8; 1];
    let mut buffer = ReadBuf::new(&mut byte);
    let broken = std::future::poll_fn(|context| {
        Pin::new(&mut connection.stream).poll_read(context, &mut buffer)
    });
    tokio::time::timeout(Duration::from_secs(10), broken)
        .await
        .expect("the server's close reaches the client")
        .expect("the server closes cleanly");
}

async fn serve(mut stream: TcpStream, fake: Fake) {
    let mut buffer = Vec::new();
    loop {
        let parsed = if fake.sessions {
            parse_client_message(&buffer, &Limits::default())
        } else {
            parse_request(&buffer, &Limits::default()).map(|parsed| match parsed {
                Parsed::Incomplete => Parsed::Incomplete,
                Parsed::Complete { value, consumed } => Parsed::Complete {
                    value: ClientMessage::File(value),
                    consumed,
                },
            })
        };
        let message = match parsed {
            Ok(Parsed::Complete { value, consumed }) => {
                buffer.drain(..consumed);
                value
            }
            Ok(Parsed::Incomplete) => {
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
                continue;
            }
            Err(_) => {
                let _ = stream.write_all(b"ERR_CMD_ERR\r\n").await;
                return;
            }
        };
        let (request, session) = match message {
            ClientMessage::File(request) => (request, None),
            ClientMessage::Session(SessionMessage::Numbered { session, request }) => {
                (request, Some(session))
            }
            ClientMessage::Session(SessionMessage::Open) => {
                let id = {
                    let mut seen = fake.seen.lock().unwrap();
                    seen.opened += 1;
                    SessionId(6 + seen.opened)
                };
                let mut wire = Vec::new();
                Response::SessionOpened { id }.encode(&mut wire);
                stream.write_all(&wire).await.unwrap();
                continue;
            }
            other => panic!("the client sent {other:?}"),
        };
        {
            let mut seen = fake.seen.lock().unwrap();
            seen.requests.push(request.clone());
            seen.sessions.push(session);
        }
        let (response, close) = match (fake.script)(&request) {
            Reply::Answer(response) => (response, false),
            Reply::AnswerAndClose(response) => (response, true),
            Reply::Close => return,
            Reply::Hang => std::future::pending().await,
        };
        let mut wire = Vec::new();
        response.encode(&mut wire);
        let chunk_bytes = if fake.trickle { 1 } else { wire.len() };
        for chunk in wire.chunks(chunk_bytes) {
            stream.write_all(chunk).await.unwrap();
            stream.flush().await.unwrap();
        }
        if close {
            return;
        }
    }
}

/// An address where nothing listens.
async fn dead_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

/// A client of the classic protocol, without sessions.
fn config(servers: &[&str]) -> ClientConfig {
    ClientConfig {
        attempts_max: 5,
        backoff: Duration::from_millis(1),
        backoff_max: Duration::from_millis(1),
        sessions: false,
        ..ClientConfig::new(servers.iter().copied())
    }
}

fn answer(response: Response) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |_| Reply::Answer(response.clone())
}

fn redirect(to: Option<&str>) -> Reply {
    Reply::Answer(Response::Redirect {
        leader: to.map(str::to_string),
    })
}

/// A server that plays a tiny store: each write gets the next version.
fn leader_script() -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    let next = Mutex::new(0u64);
    move |request| {
        let response = match request {
            Request::Write { .. } => {
                let mut next = next.lock().unwrap();
                *next += 1;
                Response::Written {
                    version: Version(*next),
                }
            }
            Request::Read { name } if name == "a" => Response::Contents {
                version: Version(1),
                contents: Bytes::from_static(b"bin\r\n\0"),
                exptime_s: 9,
            },
            Request::Read { .. } => Response::FileNotFound,
            Request::Cas { version, .. } if *version == Version(1) => Response::Written {
                version: Version(2),
            },
            Request::Cas { .. } => Response::VersionMismatch {
                current: Version(1),
            },
            Request::Delete { .. } => Response::Deleted,
        };
        Reply::Answer(response)
    }
}

#[tokio::test]
async fn each_operation_returns_its_typed_result() {
    let server = FakeServer::start(leader_script()).await;
    let mut client = Client::new(config(&[&server.address]));
    assert_eq!(client.write("a", "x", 0).await.unwrap(), Version(1));
    assert_eq!(client.write("a", "y", 10).await.unwrap(), Version(2));
    let file = client.read("a").await.unwrap();
    assert_eq!(
        file,
        File {
            version: Version(1),
            contents: Bytes::from_static(b"bin\r\n\0"),
            exptime_s: 9
        }
    );
    assert!(matches!(client.read("b").await, Err(ClientError::NotFound)));
    assert_eq!(
        client.cas("a", Version(1), "z", 0).await.unwrap(),
        Version(2)
    );
    assert!(matches!(
        client.cas("a", Version(7), "z", 0).await,
        Err(ClientError::VersionMismatch {
            current: Version(1)
        })
    ));
    client.delete("a").await.unwrap();
    assert_eq!(server.requests().len(), 7);
}

#[tokio::test]
async fn answers_arriving_one_byte_at_a_time_are_parsed() {
    let server = FakeServer::start_with(true, true, leader_script()).await;
    let mut client = Client::new(config(&[&server.address]));
    assert_eq!(
        client.read("a").await.unwrap().contents,
        Bytes::from_static(b"bin\r\n\0")
    );
    assert_eq!(client.write("a", "x", 0).await.unwrap(), Version(1));
}

#[tokio::test]
async fn a_redirect_is_followed_and_remembered() {
    let leader = FakeServer::start(leader_script()).await;
    let leader_address = leader.address.clone();
    let follower = FakeServer::start(move |_| redirect(Some(&leader_address))).await;
    let mut client = Client::new(config(&[&follower.address]));
    assert_eq!(client.write("a", "x", 0).await.unwrap(), Version(1));
    assert_eq!(client.connected_to(), Some(leader.address.as_str()));
    assert_eq!(client.write("a", "y", 0).await.unwrap(), Version(2));
    assert_eq!(follower.requests().len(), 1);
    assert_eq!(leader.requests().len(), 2);
}

#[tokio::test]
async fn with_no_leader_known_the_next_server_is_tried() {
    let electing = FakeServer::start(|_| redirect(None)).await;
    let leader = FakeServer::start(leader_script()).await;
    let mut client = Client::new(config(&[&electing.address, &leader.address]));
    assert_eq!(client.write("a", "x", 0).await.unwrap(), Version(1));
    assert_eq!(electing.requests().len(), 1);
}

#[tokio::test]
async fn a_server_that_cannot_be_reached_is_skipped() {
    let dead = dead_address().await;
    let leader = FakeServer::start(leader_script()).await;
    let mut client = Client::new(config(&[&dead, &leader.address]));
    assert_eq!(client.write("a", "x", 0).await.unwrap(), Version(1));
}

#[tokio::test]
async fn attempts_are_bounded() {
    let first = FakeServer::start(|_| redirect(None)).await;
    let second = FakeServer::start(|_| redirect(None)).await;
    let mut client = Client::new(config(&[&first.address, &second.address]));
    let error = client.write("a", "x", 0).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Unavailable { attempts: 5, .. }),
        "{error}"
    );
    assert!(!error.outcome_unknown());
    assert_eq!(first.requests().len() + second.requests().len(), 5);
}

#[tokio::test]
async fn redirect_loops_are_bounded_too() {
    let a = FakeServer::start(|_| redirect(None)).await;
    let a_address = a.address.clone();
    let b = FakeServer::start(move |_| redirect(Some(&a_address))).await;
    let mut client = Client::new(config(&[&b.address]));
    let error = client.read("f").await.unwrap_err();
    assert!(
        matches!(error, ClientError::Unavailable { attempts: 5, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_change_whose_connection_breaks_is_not_resent() {
    let breaking = FakeServer::start(|_| Reply::Close).await;
    let leader = FakeServer::start(leader_script()).await;
    let mut client = Client::new(config(&[&breaking.address, &leader.address]));
    let error = client.write("a", "x", 0).await.unwrap_err();
    assert!(
        matches!(error, ClientError::ConnectionLost { .. }),
        "{error}"
    );
    assert!(error.outcome_unknown());
    assert_eq!(breaking.requests().len(), 1);
    assert!(leader.requests().is_empty());
    // The next request goes to the next server.
    assert_eq!(client.write("a", "y", 0).await.unwrap(), Version(1));
}

#[tokio::test]
async fn a_read_whose_connection_breaks_is_retried_elsewhere() {
    let breaking = FakeServer::start(|_| Reply::Close).await;
    let leader = FakeServer::start(leader_script()).await;
    let mut client = Client::new(config(&[&breaking.address, &leader.address]));
    assert_eq!(client.read("a").await.unwrap().version, Version(1));
}

#[tokio::test]
async fn a_silent_server_times_out_with_the_outcome_unknown() {
    let silent = FakeServer::start(|_| Reply::Hang).await;
    let mut client = Client::new(ClientConfig {
        request_timeout: Duration::from_millis(50),
        ..config(&[&silent.address])
    });
    let error = client.write("a", "x", 0).await.unwrap_err();
    assert!(matches!(error, ClientError::Timeout { .. }), "{error}");
    assert!(error.outcome_unknown());
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_replaced_without_error() {
    let server = FakeServer::start(|request| match request {
        Request::Read { .. } => Reply::AnswerAndClose(Response::FileNotFound),
        _ => Reply::Answer(Response::Written {
            version: Version(4),
        }),
    })
    .await;
    let mut client = Client::new(config(&[&server.address]));
    assert!(matches!(client.read("a").await, Err(ClientError::NotFound)));
    let idle = client.connection.as_mut().expect("kept after the answer");
    until_broken(idle).await;
    assert_eq!(client.write("a", "x", 0).await.unwrap(), Version(4));
    assert_eq!(
        server.connections(),
        2,
        "the broken connection was replaced"
    );
    assert_eq!(
        server.requests().len(),
        2,
        "nothing was sent on the broken one"
    );
}

#[tokio::test]
async fn server_errors_become_typed_errors() {
    let refusing = FakeServer::start(answer(Response::CommandError)).await;
    let mut client = Client::new(config(&[&refusing.address]));
    assert!(matches!(client.read("a").await, Err(ClientError::Rejected)));
    let failing = FakeServer::start(answer(Response::Internal)).await;
    let mut client = Client::new(config(&[&failing.address]));
    let error = client.write("a", "x", 0).await.unwrap_err();
    assert!(matches!(error, ClientError::Internal) && error.outcome_unknown());
    let confused = FakeServer::start(answer(Response::Deleted)).await;
    let mut client = Client::new(config(&[&confused.address]));
    let error = client.write("a", "x", 0).await.unwrap_err();
    assert!(
        matches!(error, ClientError::UnexpectedResponse(ref text) if text == "OK"),
        "{error}"
    );
}

#[tokio::test]
async fn invalid_requests_are_refused_before_sending() {
    let server = FakeServer::start(leader_script()).await;
    let mut client = Client::new(ClientConfig {
        limits: Limits {
            file_bytes_max: 4,
            name_bytes_max: 8,
        },
        ..config(&[&server.address])
    });
    for result in [
        client.write("has space", "x", 0).await,
        client.write("", "x", 0).await,
        client.write("long-name", "x", 0).await,
        client.write("a", "12345", 0).await,
    ] {
        assert!(
            matches!(result, Err(ClientError::InvalidRequest(_))),
            "{result:?}"
        );
    }
    assert!(server.requests().is_empty());
}

/// A client with sessions, as `ClientConfig::new` makes it.
fn session_config(servers: &[&str]) -> ClientConfig {
    ClientConfig {
        sessions: true,
        ..config(servers)
    }
}

fn numbered(id: u64, seq: u64) -> Option<SessionSeq> {
    Some(SessionSeq {
        id: SessionId(id),
        seq,
    })
}

#[tokio::test]
async fn changes_are_numbered_in_one_session_and_reads_are_not() {
    let server = FakeServer::start(leader_script()).await;
    let mut client = Client::new(session_config(&[&server.address]));
    assert_eq!(client.write("a", "x", 0).await.unwrap(), Version(1));
    assert_eq!(client.read("a").await.unwrap().version, Version(1));
    client.delete("a").await.unwrap();
    assert_eq!(server.opened(), 1);
    assert_eq!(client.session(), Some(SessionId(7)));
    assert_eq!(
        server.sessions(),
        vec![numbered(7, 1), None, numbered(7, 2)]
    );
}

#[tokio::test]
async fn a_change_whose_connection_breaks_is_resent_with_the_same_number() {
    let breaking = FakeServer::start(|_| Reply::Close).await;
    let leader = FakeServer::start(leader_script()).await;
    let mut client = Client::new(session_config(&[&breaking.address, &leader.address]));
    assert_eq!(client.write("a", "x", 0).await.unwrap(), Version(1));
    assert_eq!(breaking.sessions(), vec![numbered(7, 1)]);
    assert_eq!(leader.sessions(), vec![numbered(7, 1)]);
    // A silent server and ERR_INTERNAL leave the outcome unknown too.
    let silent = FakeServer::start(|_| Reply::Hang).await;
    let failing = FakeServer::start(answer(Response::Internal)).await;
    let leader = FakeServer::start(leader_script()).await;
    let mut client = Client::new(ClientConfig {
        request_timeout: Duration::from_millis(50),
        ..session_config(&[&silent.address, &failing.address, &leader.address])
    });
    assert_eq!(client.write("a", "x", 0).await.unwrap(), Version(1));
    assert_eq!(silent.sessions(), vec![numbered(7, 1)]);
    assert_eq!(failing.sessions(), vec![numbered(7, 1)]);
    assert_eq!(leader.sessions(), vec![numbered(7, 1)]);
}

#[tokio::test]
async fn a_session_expired_before_the_change_went_anywhere_is_replaced() {
    let first = AtomicUsize::new(0);
    let server = FakeServer::start(move |request| {
        if first.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::Answer(Response::SessionExpired)
        } else {
            leader_script()(request)
        }
    })
    .await;
    let mut client = Client::new(session_config(&[&server.address]));
    assert_eq!(client.write("a", "x", 0).await.unwrap(), Version(1));
    assert_eq!(server.opened(), 2);
    assert_eq!(server.sessions(), vec![numbered(7, 1), numbered(8, 1)]);
}

#[tokio::test]
async fn a_session_expired_during_a_resend_leaves_the_outcome_unknown() {
    let breaking = FakeServer::start(|_| Reply::Close).await;
    let forgetting = FakeServer::start(answer(Response::SessionExpired)).await;
    let mut client = Client::new(session_config(&[&breaking.address, &forgetting.address]));
    let error = client.write("a", "x", 0).await.unwrap_err();
    assert!(matches!(error, ClientError::SessionLost), "{error}");
    assert!(error.outcome_unknown());
    assert_eq!(client.session(), None);
}

#[tokio::test]
async fn a_server_without_sessions_gets_plain_requests() {
    let server = FakeServer::without_sessions(leader_script()).await;
    let mut client = Client::new(session_config(&[&server.address]));
    assert_eq!(client.write("a", "x", 0).await.unwrap(), Version(1));
    assert_eq!(client.write("a", "y", 0).await.unwrap(), Version(2));
    assert_eq!(server.sessions(), vec![None, None]);
    assert_eq!(client.session(), None);
}

#[tokio::test]
async fn redirects_without_a_leader_back_off_and_end_in_time_naming_the_servers() {
    let first = FakeServer::start(|_| redirect(None)).await;
    let second = FakeServer::start(|_| redirect(None)).await;
    let mut client = Client::new(ClientConfig {
        attempts_max: 1000,
        backoff: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        retry_time_max: Duration::from_millis(300),
        ..config(&[&first.address, &second.address])
    });
    let started = Instant::now();
    let error = client.read("f").await.unwrap_err();
    let ClientError::Unavailable {
        attempts,
        tried,
        last,
    } = &error
    else {
        panic!("{error}");
    };
    assert_eq!(tried, &vec![first.address.clone(), second.address.clone()]);
    assert!(last.contains("ERR_REDIRECT _"), "{last}");
    // Pauses of 10, 20, 40, 40, ... ms fit at most 9 attempts in 300 ms.
    assert!(*attempts <= 9, "{attempts} attempts: spinning");
    assert!(started.elapsed() < Duration::from_secs(2));
    let text = error.to_string();
    assert!(text.contains(&first.address) && text.contains(&second.address));
}

#[tokio::test]
async fn servers_redirecting_to_each_other_are_not_spun_on() {
    let c_address = Arc::new(Mutex::new(String::new()));
    let named = c_address.clone();
    let b = FakeServer::start(move |_| redirect(Some(&named.lock().unwrap()))).await;
    let b_address = b.address.clone();
    let c = FakeServer::start(move |_| redirect(Some(&b_address))).await;
    *c_address.lock().unwrap() = c.address.clone();
    let mut client = Client::new(ClientConfig {
        attempts_max: 1000,
        backoff: Duration::from_millis(20),
        backoff_max: Duration::from_millis(20),
        retry_time_max: Duration::from_millis(200),
        ..config(&[&b.address])
    });
    let error = client.read("f").await.unwrap_err();
    let ClientError::Unavailable { attempts, .. } = error else {
        panic!("{error}");
    };
    // At most every other attempt is immediate: 20 ms pauses in 200 ms.
    assert!(attempts <= 21, "{attempts} attempts: spinning");
    assert!(attempts >= 4, "{attempts} attempts");
}

#[tokio::test]
async fn given_up_a_read_changed_nothing_but_a_numbered_change_may_have_applied() {
    let breaking = FakeServer::start(|_| Reply::Close).await;
    let mut client = Client::new(session_config(&[&breaking.address]));
    let error = client.read("a").await.unwrap_err();
    assert!(matches!(error, ClientError::Unavailable { .. }), "{error}");
    assert!(!error.outcome_unknown());
    let error = client.write("a", "x", 0).await.unwrap_err();
    assert!(
        matches!(error, ClientError::ConnectionLost { .. }),
        "{error}"
    );
    assert!(error.outcome_unknown());
    // Every attempt carried the same number; the next change gets the next.
    let sent: Vec<_> = breaking.sessions().into_iter().flatten().collect();
    assert_eq!(sent, vec![numbered(7, 1).unwrap(); 5]);
    assert_eq!(client.session(), Some(SessionId(7)));
    let _ = client.write("a", "y", 0).await;
    assert_eq!(breaking.sessions().last(), Some(&numbered(7, 2)));
}
