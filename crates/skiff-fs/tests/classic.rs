//! The classic test-suite of the protocol, each case against a three-node
//! cluster in this process, spoken as `telnet` would speak it.

mod common;

use bytes::Bytes;
use common::{contents, written, Cluster, Session, TestClock};
use skiff_fs::protocol::{Response, Version};
use skiff_fs::ClientError;
use std::collections::HashSet;
use std::time::Duration;

async fn leader_session(cluster: &Cluster) -> Session {
    Session::open(&cluster.address(cluster.leader().await)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_commands_behave_as_the_protocol_says() {
    let cluster = Cluster::start(3).await;
    let mut s = leader_session(&cluster).await;
    let v1 = written(&s.exchange(&[b"write f 5\r\nhello\r\n"], 1).await[0]);
    assert!(v1.0 > 0);
    assert_eq!(
        s.exchange(&[b"read f\r\n"], 1).await,
        [contents(v1, b"hello", 0)]
    );
    let cas = format!("cas f {v1} 3\r\nbye\r\n");
    let v2 = written(&s.exchange(&[cas.as_bytes()], 1).await[0]);
    assert!(v2 > v1);
    assert_eq!(
        s.exchange(&[cas.as_bytes()], 1).await,
        [Response::VersionMismatch { current: v2 }]
    );
    assert_eq!(
        s.exchange(&[b"read f\r\n"], 1).await,
        [contents(v2, b"bye", 0)]
    );
    let v3 = written(&s.exchange(&[b"write f 1\r\nx\r\n"], 1).await[0]);
    assert!(v3 > v2);
    assert_eq!(s.exchange(&[b"delete f\r\n"], 1).await, [Response::Deleted]);
    for missing in [&b"read f\r\n"[..], b"delete f\r\n", b"cas f 1 1\r\nz\r\n"] {
        assert_eq!(s.exchange(&[missing], 1).await, [Response::FileNotFound]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_redirect_changes_to_the_leader_and_serve_reads() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let mut s = Session::open(&cluster.address(follower)).await;
    let answers = s.exchange(&[b"write f 1\r\nx\r\n", b"read f\r\n"], 2).await;
    let redirect = Response::Redirect {
        leader: Some(cluster.address(leader)),
    };
    assert_eq!(answers, [redirect, Response::FileNotFound]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_contents_come_back_byte_for_byte() {
    let cluster = Cluster::start(3).await;
    let mut s = leader_session(&cluster).await;
    let bytes: Vec<u8> = (0..=255u8).chain(*b"\r\n\r\n\0").collect();
    let mut request = format!("write bin {}\r\n", bytes.len()).into_bytes();
    request.extend_from_slice(&bytes);
    request.extend_from_slice(b"\r\n");
    let version = written(&s.exchange(&[&request], 1).await[0]);
    assert_eq!(
        s.exchange(&[b"read bin\r\n"], 1).await,
        [contents(version, &bytes, 0)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_split_into_chunks_is_one_command() {
    let cluster = Cluster::start(3).await;
    let mut s = leader_session(&cluster).await;
    let chunks: [&[u8]; 6] = [
        b"wri",
        b"te spl",
        b"it 10 0\r",
        b"\n01234",
        b"56789\r",
        b"\n",
    ];
    let version = written(&s.exchange(&chunks, 1).await[0]);
    assert_eq!(
        s.exchange(&[b"re", b"ad split\r", b"\n"], 1).await,
        [contents(version, b"0123456789", 0)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_commands_in_one_write_is_answered_in_order() {
    let cluster = Cluster::start(3).await;
    let mut s = leader_session(&cluster).await;
    let batch = b"write a 1\r\n1\r\nwrite b 1\r\n2\r\nread a\r\ndelete b\r\nread b\r\n";
    let answers = s.exchange(&[batch], 5).await;
    let (va, vb) = (written(&answers[0]), written(&answers[1]));
    assert!(vb > va);
    assert_eq!(
        answers[2..],
        [
            contents(va, b"1", 0),
            Response::Deleted,
            Response::FileNotFound
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_expire_and_a_later_write_replaces_the_expiry() {
    let clock = TestClock::default();
    let cluster = Cluster::start_with_test_clock(3, &clock).await;
    let mut s = leader_session(&cluster).await;
    let answers = s
        .exchange(
            &[b"write short 1 2\r\na\r\nwrite kept 1 1\r\nb\r\nwrite kept 1 0\r\nc\r\n"],
            3,
        )
        .await;
    let short = written(&answers[0]);
    // The clock stands still: all 2 s remain, then 1 (rounded up) at 1.9 s.
    let read_short = |exptime_s| contents(short, b"a", exptime_s);
    assert_eq!(s.exchange(&[b"read short\r\n"], 1).await, [read_short(2)]);
    clock.advance(Duration::from_millis(1900));
    assert_eq!(s.exchange(&[b"read short\r\n"], 1).await, [read_short(1)]);
    clock.advance(Duration::from_millis(100));
    let answers = s.exchange(&[b"read short\r\nread kept\r\n"], 2).await;
    assert_eq!(answers[0], Response::FileNotFound);
    assert!(
        matches!(&answers[1], Response::Contents { contents, exptime_s: 0, .. } if contents == "c")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_of_every_kind_is_refused_and_closes_the_connection() {
    let cluster = Cluster::start(3).await;
    let address = cluster.address(cluster.leader().await);
    let long_line = vec![b'x'; 500];
    let long_name = format!("read {}\r\n", "n".repeat(101));
    let cases: [&[u8]; 10] = [
        b"write f abc\r\nabc\r\n",
        b"write f -1\r\n",
        b"write f 3\r\nabcdef\r\n",
        b"frobnicate f\r\n",
        &long_line,
        b"write f 99999999\r\n",
        long_name.as_bytes(),
        b"cas f x 1\r\nz\r\n",
        b"read\r\n",
        b"read f\n",
    ];
    for case in cases {
        let mut s = Session::open(&address).await;
        let answers = s.exchange(&[case], 1).await;
        assert_eq!(
            answers,
            [Response::CommandError],
            "{:?}",
            String::from_utf8_lossy(case)
        );
        s.expect_closed().await;
    }
    // What came before the bad command in the same packet is still answered.
    let mut s = Session::open(&address).await;
    let answers = s
        .exchange(&[b"read nope\r\nbogus\r\nread nope\r\n"], 2)
        .await;
    assert_eq!(answers, [Response::FileNotFound, Response::CommandError]);
    s.expect_closed().await;
    // And the server goes on serving others.
    let mut s = Session::open(&address).await;
    assert_eq!(
        s.exchange(&[b"read nope\r\n"], 1).await,
        [Response::FileNotFound]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_writers_to_one_file_get_distinct_versions() {
    const WRITERS: usize = 500;
    let cluster = Cluster::start(3).await;
    cluster.leader().await;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let mut client = cluster.client();
            tokio::spawn(async move {
                let contents = format!("writer-{writer}");
                let version = client.write("shared", contents.clone(), 0).await.unwrap();
                (version, contents)
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let versions: HashSet<Version> = outcomes.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions.len(), WRITERS);
    let (last_version, last_contents) = outcomes.iter().max().unwrap();
    let file = cluster.client().read("shared").await.unwrap();
    assert_eq!(
        (file.version, file.contents),
        (*last_version, Bytes::from(last_contents.clone()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_cas_loops_succeed_once_each() {
    const LOOPS: usize = 100;
    const ATTEMPTS_MAX: usize = 10_000;
    let cluster = Cluster::start(3).await;
    let start = cluster.client().write("counter", "start", 0).await.unwrap();
    let tasks: Vec<_> = (0..LOOPS)
        .map(|id| {
            let mut client = cluster.client();
            tokio::spawn(async move {
                let mut known = start;
                for _ in 0..ATTEMPTS_MAX {
                    match client.cas("counter", known, format!("loop-{id}"), 0).await {
                        Ok(version) => return version,
                        Err(ClientError::VersionMismatch { current }) => known = current,
                        Err(other) => panic!("cas loop {id}: {other}"),
                    }
                }
                panic!("cas loop {id} never succeeded");
            })
        })
        .collect();
    let mut successes = HashSet::new();
    for task in tasks {
        assert!(
            successes.insert(task.await.unwrap()),
            "two cas succeeded with one version"
        );
    }
    assert_eq!(successes.len(), LOOPS);
    let file = cluster.client().read("counter").await.unwrap();
    assert_eq!(Some(&file.version), successes.iter().max());
}
