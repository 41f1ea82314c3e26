//! Files outlive their servers: the store is rebuilt from the log at start.

mod common;

use bytes::Bytes;
use common::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_a_restart_of_the_whole_cluster() {
    let mut cluster = Cluster::start(3).await;
    let mut client = cluster.client();
    let mut written = Vec::new();
    for i in 0..20 {
        let name = format!("file-{i}");
        let contents = Bytes::from(format!("contents {i}\r\n\0"));
        let version = client.write(&name, contents.clone(), 0).await.unwrap();
        written.push((name, version, contents));
    }
    client.delete("file-0").await.unwrap();
    for id in 1..=3 {
        cluster.stop_node(id).await;
    }
    for id in 1..=3 {
        cluster.start_node(id).await;
    }
    cluster.leader().await;
    let mut client = cluster.client();
    assert!(matches!(
        client.read("file-0").await,
        Err(skiff_fs::ClientError::NotFound)
    ));
    for (name, version, contents) in &written[1..] {
        let file = client.read(name).await.unwrap();
        assert_eq!(
            (&file.version, &file.contents),
            (version, contents),
            "{name}"
        );
    }
}
