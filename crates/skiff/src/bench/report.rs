//! The bench's findings, as a table for people and as JSON for programs.

use super::floor::Floor;
use super::load::Measurement;
use serde::Serialize;
use std::fmt::{self, Write as _};
use std::time::Duration;

/// Everything one run of the bench found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Concurrent clients, each with one write in flight.
    pub clients: u64,
    /// Bytes of each written value.
    pub bytes: usize,
    /// Seconds of warm-up before the measured window.
    pub warmup_seconds: f64,
    /// Seconds measured.
    pub seconds: f64,
    /// One entry per target, in the order they ran.
    pub results: Vec<TargetReport>,
    /// Skiff's figures over etcd's, when both ran.
    pub ratios: Option<Ratios>,
    /// Skiff's throughput with mutual TLS between its nodes over without,
    /// when both ran (`--tls-compare`).
    pub tls_throughput_ratio: Option<f64>,
    /// Skiff's throughput with metrics over without, when both ran
    /// (`--metrics-compare`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_throughput_ratio: Option<f64>,
    /// Read throughput against write throughput, with `--reads`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_ratios: Option<ReadRatios>,
    /// The latency floor, when measured.
    pub floor: Option<FloorReport>,
}

/// The target name of Skiff run with mutual TLS between its nodes.
pub const SKIFF_TLS: &str = "skiff+tls";
/// The target name of Skiff run with metrics off (`--metrics-compare`).
pub const SKIFF_NO_METRICS: &str = "skiff-no-metrics";
/// The target name of Skiff's linearizable reads (`--reads`).
pub const SKIFF_READS: &str = "skiff-reads";
/// The target name of etcd's linearizable reads (`--reads`).
pub const ETCD_READS: &str = "etcd-reads";
/// The target name of the read ceiling: Skiff's readers against servers
/// that answer at once and do nothing else (`--reads`).
pub const CEILING_READS: &str = "ceiling-reads";

/// Read throughputs over write throughputs, with `--reads`.
#[derive(Debug, Serialize)]
pub struct ReadRatios {
    /// Skiff's reads per second over its writes per second in the same run.
    pub skiff_reads_over_writes: Option<f64>,
    /// Skiff's reads per second over etcd's, when both ran.
    pub skiff_reads_over_etcd_reads: Option<f64>,
    /// etcd's reads per second over its writes per second.
    pub etcd_reads_over_writes: Option<f64>,
    /// Skiff's reads per second over the ceiling's: the share of what this
    /// machine allows that Skiff's read path reaches.
    pub skiff_reads_over_ceiling: Option<f64>,
    /// The ceiling's reads per second over Skiff's writes: the most any
    /// read path could reach here, in writes of the same run.
    pub ceiling_over_skiff_writes: Option<f64>,
}

/// What one target did.
#[derive(Debug, Serialize)]
pub struct TargetReport {
    /// `skiff`, [`SKIFF_TLS`] or `etcd`.
    pub target: &'static str,
    /// What ran: the cluster started by the bench or the servers given.
    pub setup: String,
    /// Writes acknowledged in the measured window.
    pub operations: u64,
    /// Writes that failed in the window.
    pub errors: u64,
    /// The first error met, if any.
    pub first_error: Option<String>,
    /// The measured window's length.
    pub window_seconds: f64,
    /// Acknowledged writes per second.
    pub throughput_per_second: f64,
    /// Latency of the acknowledged writes.
    pub latency_ms: Latency,
    /// CPU time per acknowledged write, in microseconds: this process's
    /// (the clients) and the servers' together (when the bench started
    /// them, so it knows their processes).
    pub cpu_us_per_write: CpuPerWrite,
    /// The data directories over the run, when the bench started the cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<super::disk::DiskReport>,
    /// How long a restarted follower took to serve again (`--restart-check`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartReport>,
}

/// A follower stopped after the load and started again.
#[derive(Debug, Serialize)]
pub struct RestartReport {
    /// The node restarted.
    pub node: u64,
    /// What it had committed when it stopped.
    pub committed_before: u64,
    /// From its start until it answered, knew the leader and had committed
    /// at least `committed_before`, in ms.
    pub serving_after_ms: f64,
}

/// Latency figures in milliseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    /// The mean.
    pub mean: f64,
    /// The median.
    pub p50: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The 99.9th percentile.
    pub p99_9: f64,
    /// The largest.
    pub max: f64,
}

/// CPU time per write, in microseconds.
#[derive(Debug, Serialize)]
pub struct CpuPerWrite {
    /// The bench process: every client's work.
    pub bench: f64,
    /// The servers' processes together, when known.
    pub servers: Option<f64>,
}

/// Skiff's figures divided by etcd's.
#[derive(Debug, Serialize)]
pub struct Ratios {
    /// Throughput: above 1 means skiff is faster.
    pub throughput: f64,
    /// Mean latency: below 1 means skiff is faster.
    pub mean_latency: f64,
    /// 99th-percentile latency: below 1 means skiff is faster.
    pub p99_latency: f64,
}

/// The floor and how close skiff came to it.
#[derive(Debug, Serialize)]
pub struct FloorReport {
    /// Each measurement, in the order taken: one just before and one just
    /// after Skiff's run when Skiff ran, so that the floor and Skiff meet
    /// the same machine; one after the targets stopped otherwise.
    pub measurements: Vec<FloorMeasurement>,
    /// The floor: the mean of the measurements' floors, in ms.
    pub floor_ms: f64,
    /// Skiff's mean write latency over the floor, when skiff ran.
    pub skiff_mean_over_floor: Option<f64>,
}

/// One measurement of the floor.
#[derive(Debug, Serialize)]
pub struct FloorMeasurement {
    /// The sync the floor counts, in ms: the smaller of the two below.
    pub sync_ms: f64,
    /// The median small append plus `fdatasync` by one writer alone, in ms.
    pub sync_alone_ms: f64,
    /// The same with `sync_writers` writers syncing at once, in ms.
    pub sync_concurrent_ms: f64,
    /// How many writers synced at once.
    pub sync_writers: usize,
    /// The median loopback round trip, in ms.
    pub round_trip_ms: f64,
    /// sync + round trip + sync, in ms.
    pub floor_ms: f64,
}

impl From<&Floor> for FloorMeasurement {
    fn from(floor: &Floor) -> FloorMeasurement {
        FloorMeasurement {
            sync_ms: ms(floor.sync()),
            sync_alone_ms: ms(floor.sync_alone),
            sync_concurrent_ms: ms(floor.sync_concurrent),
            sync_writers: floor.writers,
            round_trip_ms: ms(floor.round_trip),
            floor_ms: ms(floor.total()),
        }
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

impl TargetReport {
    /// The report of `measurement`; `cpu` is the CPU time the bench and the
    /// servers used in the window.
    pub fn new(
        target: &'static str,
        setup: String,
        measurement: &Measurement,
        cpu: (Duration, Option<Duration>),
    ) -> TargetReport {
        let h = &measurement.latency_us;
        let us_to_ms = |us: u64| us as f64 / 1000.0;
        let per_write =
            |cpu: Duration| cpu.as_secs_f64() * 1e6 / measurement.operations.max(1) as f64;
        TargetReport {
            target,
            setup,
            operations: measurement.operations,
            errors: measurement.errors,
            first_error: measurement.first_error.clone(),
            window_seconds: measurement.window.as_secs_f64(),
            throughput_per_second: measurement.throughput(),
            latency_ms: Latency {
                mean: h.mean() / 1000.0,
                p50: us_to_ms(h.value_at_quantile(0.5)),
                p99: us_to_ms(h.value_at_quantile(0.99)),
                p99_9: us_to_ms(h.value_at_quantile(0.999)),
                max: us_to_ms(h.max()),
            },
            cpu_us_per_write: CpuPerWrite {
                bench: per_write(cpu.0),
                servers: cpu.1.map(per_write),
            },
            disk: None,
            restart: None,
        }
    }
}

impl Report {
    /// Fills in the ratios and the floor's comparison from the results.
    pub fn new(
        clients: u64,
        bytes: usize,
        warmup: Duration,
        duration: Duration,
        results: Vec<TargetReport>,
        floors: &[Floor],
    ) -> Report {
        let find = |name| results.iter().find(|r| r.target == name);
        let ratios = find("skiff").zip(find("etcd")).map(|(s, e)| Ratios {
            throughput: s.throughput_per_second / e.throughput_per_second,
            mean_latency: s.latency_ms.mean / e.latency_ms.mean,
            p99_latency: s.latency_ms.p99 / e.latency_ms.p99,
        });
        let over = |a, b| {
            find(a)
                .zip(find(b))
                .map(|(a, b): (&TargetReport, &TargetReport)| {
                    a.throughput_per_second / b.throughput_per_second
                })
        };
        let read_ratios = find(SKIFF_READS).or(find(ETCD_READS)).map(|_| ReadRatios {
            skiff_reads_over_writes: over(SKIFF_READS, "skiff"),
            skiff_reads_over_etcd_reads: over(SKIFF_READS, ETCD_READS),
            etcd_reads_over_writes: over(ETCD_READS, "etcd"),
            skiff_reads_over_ceiling: over(SKIFF_READS, CEILING_READS),
            ceiling_over_skiff_writes: over(CEILING_READS, "skiff"),
        });
        let tls_throughput_ratio = find(SKIFF_TLS)
            .zip(find("skiff"))
            .map(|(tls, plain)| tls.throughput_per_second / plain.throughput_per_second);
        let metrics_throughput_ratio = over("skiff", SKIFF_NO_METRICS);
        let floor = (!floors.is_empty()).then(|| {
            let measurements: Vec<FloorMeasurement> = floors.iter().map(Into::into).collect();
            let floor_ms =
                measurements.iter().map(|m| m.floor_ms).sum::<f64>() / measurements.len() as f64;
            FloorReport {
                measurements,
                floor_ms,
                skiff_mean_over_floor: find("skiff").map(|s| s.latency_ms.mean / floor_ms),
            }
        });
        Report {
            clients,
            bytes,
            warmup_seconds: warmup.as_secs_f64(),
            seconds: duration.as_secs_f64(),
            results,
            ratios,
            tls_throughput_ratio,
            metrics_throughput_ratio,
            read_ratios,
            floor,
        }
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "skiff bench: {} clients, {}-byte writes, {} s warm-up, {} s measured",
            self.clients, self.bytes, self.warmup_seconds, self.seconds
        )?;
        writeln!(
            f,
            "{:<12}{:>10}{:>11}{:>9}{:>9}{:>9}{:>10}{:>9}{:>8}  cpu us/write",
            "target",
            "writes",
            "writes/s",
            "mean ms",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "errors"
        )?;
        for result in &self.results {
            writeln!(f, "{}", row(result))?;
        }
        for result in &self.results {
            writeln!(f, "  {}: {}", result.target, result.setup)?;
            if let Some(error) = &result.first_error {
                writeln!(f, "  {} first error: {error}", result.target)?;
            }
            if let Some(disk) = &result.disk {
                write_disk(f, result.target, disk)?;
            }
            if let Some(restart) = &result.restart {
                writeln!(
                    f,
                    "  {} restart: node {} served again {:.0} ms after it started \
                     (answering, leader known, committed through {} again)",
                    result.target, restart.node, restart.serving_after_ms, restart.committed_before
                )?;
            }
        }
        if let Some(r) = &self.ratios {
            writeln!(
                f,
                "skiff/etcd: throughput {:.2}x (higher is better), mean latency {:.2}x, \
                 p99 latency {:.2}x (lower is better)",
                r.throughput, r.mean_latency, r.p99_latency
            )?;
        }
        if let Some(r) = &self.read_ratios {
            write_read_ratios(f, r)?;
        }
        if let Some(ratio) = self.tls_throughput_ratio {
            writeln!(
                f,
                "{SKIFF_TLS}/skiff: throughput {:.1}% (mutual TLS between the nodes over plain TCP)",
                ratio * 100.0
            )?;
        }
        if let Some(ratio) = self.metrics_throughput_ratio {
            writeln!(
                f,
                "skiff/{SKIFF_NO_METRICS}: throughput {:.1}% (metrics counted and served over \
                 not counted; the cost is {:.1}%)",
                ratio * 100.0,
                (1.0 - ratio) * 100.0
            )?;
        }
        if let Some(floor) = &self.floor {
            write_floor(f, floor)?;
        }
        Ok(())
    }
}

/// The read ratios, each only when both of its figures were measured.
fn write_read_ratios(f: &mut fmt::Formatter<'_>, r: &ReadRatios) -> fmt::Result {
    writeln!(
        f,
        "reads (rows *-reads count reads, each of the client's own key, written before):"
    )?;
    let lines = [
        ("skiff reads/skiff writes", r.skiff_reads_over_writes),
        ("skiff reads/etcd reads", r.skiff_reads_over_etcd_reads),
        ("etcd reads/etcd writes", r.etcd_reads_over_writes),
        (
            "skiff reads/ceiling (servers doing nothing else)",
            r.skiff_reads_over_ceiling,
        ),
        (
            "ceiling/skiff writes (the most any read path reaches here)",
            r.ceiling_over_skiff_writes,
        ),
    ];
    for (name, ratio) in lines {
        if let Some(ratio) = ratio {
            writeln!(f, "  {name}: throughput {ratio:.2}x")?;
        }
    }
    Ok(())
}

fn write_disk(
    f: &mut fmt::Formatter<'_>,
    target: &str,
    disk: &super::disk::DiskReport,
) -> fmt::Result {
    const MIB: f64 = 1024.0 * 1024.0;
    let finals: Vec<String> = (disk.final_dir_bytes.iter())
        .map(|(id, bytes)| format!("node {id} {:.1}", *bytes as f64 / MIB))
        .collect();
    write!(
        f,
        "  {target} disk: largest data directory {:.1} MiB (node {}); at the end {} MiB",
        disk.largest_dir_bytes as f64 / MIB,
        disk.largest_dir_node,
        finals.join(", ")
    )?;
    match disk.bytes_written {
        Some(bytes) => writeln!(f, "; the nodes wrote {:.1} MiB", bytes as f64 / MIB),
        None => writeln!(f),
    }
}

fn row(r: &TargetReport) -> String {
    let l = &r.latency_ms;
    let mut cpu = format!("{:.0} bench", r.cpu_us_per_write.bench);
    if let Some(servers) = r.cpu_us_per_write.servers {
        let _ = write!(cpu, " + {servers:.0} servers");
    }
    format!(
        "{:<12}{:>10}{:>11.0}{:>9.3}{:>9.3}{:>9.3}{:>10.3}{:>9.3}{:>8}  {cpu}",
        r.target,
        r.operations,
        r.throughput_per_second,
        l.mean,
        l.p50,
        l.p99,
        l.p99_9,
        l.max,
        r.errors
    )
}

fn write_floor(f: &mut fmt::Formatter<'_>, floor: &FloorReport) -> fmt::Result {
    let labels: &[&str] = match floor.measurements.len() {
        1 => &["floor"],
        _ => &["floor before skiff", "floor after skiff"],
    };
    for (m, when) in floor.measurements.iter().zip(labels.iter().cycle()) {
        writeln!(
            f,
            "{when}: fdatasync {:.3} ms (the smaller median: one writer alone {:.3} ms, {} writers \
             at once {:.3} ms, {} syncs each), loopback round trip {:.3} ms (median of {}): {:.3} ms",
            m.sync_ms,
            m.sync_alone_ms,
            m.sync_writers,
            m.sync_concurrent_ms,
            super::floor::SYNC_SAMPLES,
            m.round_trip_ms,
            super::floor::ROUND_TRIP_SAMPLES,
            m.floor_ms,
        )?;
    }
    write!(
        f,
        "floor = leader sync + round trip + follower sync = {:.3} ms",
        floor.floor_ms
    )?;
    if floor.measurements.len() > 1 {
        write!(f, " (the mean of the two)")?;
    }
    match floor.skiff_mean_over_floor {
        Some(ratio) => writeln!(f, "; skiff's mean latency is {ratio:.2}x the floor"),
        None => writeln!(f),
    }
}
