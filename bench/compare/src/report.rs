//! Medians and the printed lines: one per figure and implementation, then
//! the ratio skiff/raft-rs.

/// What a line reports.
#[derive(Clone, Copy, Debug)]
pub enum Figure {
    CommitsPerSecond,
    EntriesPerSecond,
    LatencyMicros,
    AllocationsPerEntry,
    AllocatedBytesPerEntry,
}

impl Figure {
    fn label(self) -> &'static str {
        match self {
            Figure::CommitsPerSecond => "commits/s",
            Figure::EntriesPerSecond => "entries/s",
            Figure::LatencyMicros => "mean latency us",
            Figure::AllocationsPerEntry => "allocations/entry",
            Figure::AllocatedBytesPerEntry => "alloc bytes/entry",
        }
    }

    fn value(self, value: f64) -> String {
        match self {
            Figure::CommitsPerSecond | Figure::EntriesPerSecond => format!("{value:.0}"),
            Figure::LatencyMicros => format!("{value:.3}"),
            Figure::AllocationsPerEntry => format!("{value:.2}"),
            Figure::AllocatedBytesPerEntry => format!("{value:.0}"),
        }
    }

    /// Which way is better, said next to the ratio so nobody has to guess.
    fn better(self) -> &'static str {
        match self {
            Figure::CommitsPerSecond | Figure::EntriesPerSecond => "higher is better",
            Figure::LatencyMicros
            | Figure::AllocationsPerEntry
            | Figure::AllocatedBytesPerEntry => "lower is better",
        }
    }
}

/// One figure of one workload at one cluster size.
pub struct Line {
    peers: u64,
    workload: &'static str,
    figure: Figure,
}

impl Line {
    pub fn new(peers: u64, workload: &'static str, figure: Figure) -> Line {
        Line {
            peers,
            workload,
            figure,
        }
    }

    /// Prints skiff's figure, raft-rs's, and their ratio.
    pub fn print(&self, skiff: f64, raft: f64) {
        let prefix = format!(
            "peers={} {:<10} {:<18}",
            self.peers,
            self.workload,
            self.figure.label()
        );
        println!("{prefix} skiff          {:>12}", self.figure.value(skiff));
        println!("{prefix} raft-rs        {:>12}", self.figure.value(raft));
        println!(
            "{prefix} skiff/raft-rs  {:>12} ({})",
            format!("{:.2}x", skiff / raft),
            self.figure.better()
        );
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty(), "median of nothing");
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}
