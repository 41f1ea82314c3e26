//! Files outlive their servers: the store is rebuilt from the log at start.

mod common;

use common::{check_files, write_files, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_a_restart_of_the_whole_cluster() {
    let mut cluster = Cluster::start(3).await;
    let mut client = cluster.client();
    let written = write_files(&mut client, 20).await;
    for id in 1..=3 {
        cluster.stop_node(id).await;
    }
    for id in 1..=3 {
        cluster.start_node(id).await;
    }
    cluster.leader().await;
    let mut client = cluster.client();
    check_files(&mut client, &written).await;
}
