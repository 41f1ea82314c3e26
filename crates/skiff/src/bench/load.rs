//! The load itself, the same for every target: `clients` tasks, each with
//! one connection and one write in flight, writing for a fixed time. Each
//! write's latency goes into the client's own HDR histogram, so clients
//! share nothing while they run; the histograms are added up at the end.
//!
//! A write counts when it completes inside the measured window, which
//! starts after the warm-up: the first writes of a connection (connecting,
//! finding the leader, a cold page cache) are left out, and so are writes
//! still in flight when the window closes.

use super::writer::Writer;
use hdrhistogram::Histogram;
use std::time::Duration;
use tokio::time::Instant;

/// The longest latency the histograms hold, in microseconds; longer ones
/// are recorded as this.
const LATENCY_US_MAX: u64 = 60_000_000;
/// The pause after a failed write, so that a dead target is not hammered.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// When the load runs.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Writes completing before this are not counted.
    pub measure_from: Instant,
    /// No write starts at or after this, and none completing after it counts.
    pub until: Instant,
}

impl Schedule {
    /// A warm-up of `warmup` from now, then `measure` of measured load.
    pub fn starting_now(warmup: Duration, measure: Duration) -> Schedule {
        let measure_from = Instant::now() + warmup;
        Schedule {
            measure_from,
            until: measure_from + measure,
        }
    }

    /// The measured window's length.
    pub fn window(&self) -> Duration {
        self.until - self.measure_from
    }
}

/// What the clients saw in the measured window, added up.
#[derive(Debug)]
pub struct Measurement {
    /// Writes that succeeded in the window.
    pub operations: u64,
    /// Writes that failed in the window.
    pub errors: u64,
    /// The first error any client met, to tell the user why.
    pub first_error: Option<String>,
    /// The window's length.
    pub window: Duration,
    /// Latencies of the successful writes, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl Measurement {
    /// Successful writes per second.
    pub fn throughput(&self) -> f64 {
        self.operations as f64 / self.window.as_secs_f64()
    }
}

/// An empty latency histogram: microseconds, three significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("the bounds are valid")
}

/// What one client saw.
struct ClientOutcome {
    latency_us: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// Runs one task per writer until `schedule.until` and adds up what they saw.
pub async fn run(writers: Vec<Writer>, schedule: Schedule) -> anyhow::Result<Measurement> {
    let tasks: Vec<_> = writers
        .into_iter()
        .map(|writer| tokio::spawn(run_client(writer, schedule)))
        .collect();
    let mut measurement = Measurement {
        operations: 0,
        errors: 0,
        first_error: None,
        window: schedule.window(),
        latency_us: latency_histogram(),
    };
    for task in tasks {
        let outcome = task.await?;
        measurement.latency_us.add(&outcome.latency_us)?;
        measurement.errors += outcome.errors;
        measurement.first_error = measurement.first_error.or(outcome.first_error);
    }
    measurement.operations = measurement.latency_us.len();
    Ok(measurement)
}

async fn run_client(mut writer: Writer, schedule: Schedule) -> ClientOutcome {
    let mut outcome = ClientOutcome {
        latency_us: latency_histogram(),
        errors: 0,
        first_error: None,
    };
    loop {
        let began = Instant::now();
        if began >= schedule.until {
            return outcome;
        }
        let written = writer.write().await;
        let ended = Instant::now();
        let counted = ended >= schedule.measure_from && ended <= schedule.until;
        match written {
            Ok(()) if counted => {
                let us = u64::try_from((ended - began).as_micros()).unwrap_or(u64::MAX);
                outcome
                    .latency_us
                    .saturating_record(us.clamp(1, LATENCY_US_MAX));
            }
            Ok(()) => {}
            Err(error) => {
                outcome.errors += u64::from(counted);
                outcome.first_error.get_or_insert(error);
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
}
