//! The floor under one commit's latency on this machine: the leader makes
//! the entry durable, sends it to a follower, the follower makes it durable
//! (the answer's way back is the other half of the round trip). So
//! `floor = sync + loopback round trip + sync`, each measured here and now:
//!
//! * sync: append a small record to a file in the data directory's file
//!   system and `fdatasync` it, as the write-ahead log does: the median of
//!   [`SYNC_SAMPLES`] syncs by one writer alone, and the median of as many
//!   by each of `writers` threads syncing files of their own at the same
//!   time, as the nodes of a cluster do; the floor takes the smaller. Both
//!   are needed on the virtual machine this was written on: most of the
//!   time a lone writer's syncs are the faster (about 0.1 ms against 0.16
//!   ms), but at times a lone writer's syncs take 4 ms while concurrent
//!   writers' still take 0.12 ms, and the nodes' own syncs (seen with
//!   `strace -T`) take the latter; a floor from a lone writer alone would
//!   then sit far above what the nodes achieve.
//! * round trip: a small message to an echo thread over loopback TCP and
//!   back, with blocking sockets and Nagle's algorithm off; the median of
//!   [`ROUND_TRIP_SAMPLES`].
//!
//! Both are measured with as little code as possible between the system
//! calls, so the floor is what the kernel and the disk allow, not what some
//! runtime adds.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Syncs measured for the median.
pub const SYNC_SAMPLES: usize = 200;
/// Round trips measured for the median.
pub const ROUND_TRIP_SAMPLES: usize = 2000;
/// Bytes appended before each sync: about one 128-byte write's log record.
const RECORD_BYTES: usize = 200;
/// Bytes of each round-trip message: about one AppendEntries of one entry.
const MESSAGE_BYTES: usize = 200;

/// The floor's parts, as measured.
#[derive(Clone, Copy, Debug)]
pub struct Floor {
    /// The median `write` + `fdatasync` of a small append by one writer
    /// alone.
    pub sync_alone: Duration,
    /// The same with `writers` writers syncing at once.
    pub sync_concurrent: Duration,
    /// How many writers synced at once for `sync_concurrent`.
    pub writers: usize,
    /// The median loopback TCP round trip of a small message.
    pub round_trip: Duration,
}

impl Floor {
    /// The sync the floor counts: the faster of the two medians.
    pub fn sync(&self) -> Duration {
        self.sync_alone.min(self.sync_concurrent)
    }

    /// Leader sync + round trip + follower sync.
    pub fn total(&self) -> Duration {
        self.sync() * 2 + self.round_trip
    }
}

/// Measures the floor, syncing temporary files in `dir` with `writers`
/// threads at once.
pub fn measure(dir: &Path, writers: usize) -> std::io::Result<Floor> {
    let writers = writers.max(1);
    let concurrent = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..writers)
            .map(|_| scope.spawn(|| sync_samples(dir)))
            .collect();
        let mut samples = Vec::with_capacity(writers * SYNC_SAMPLES);
        for thread in threads {
            let thread_samples = thread
                .join()
                .map_err(|_| std::io::Error::other("a sync thread panicked"))??;
            samples.extend(thread_samples);
        }
        Ok::<_, std::io::Error>(samples)
    })?;
    Ok(Floor {
        sync_alone: median(sync_samples(dir)?),
        sync_concurrent: median(concurrent),
        writers,
        round_trip: median(round_trip_samples()?),
    })
}

fn sync_samples(dir: &Path) -> std::io::Result<Vec<Duration>> {
    let file = tempfile::NamedTempFile::new_in(dir)?;
    let mut file = OpenOptions::new().append(true).open(file.path())?;
    let record = [b'r'; RECORD_BYTES];
    let mut samples = Vec::with_capacity(SYNC_SAMPLES);
    for _ in 0..SYNC_SAMPLES {
        let began = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        samples.push(began.elapsed());
    }
    Ok(samples)
}

fn round_trip_samples() -> std::io::Result<Vec<Duration>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut message = [0u8; MESSAGE_BYTES];
        while stream.read_exact(&mut message).is_ok() {
            stream.write_all(&message)?;
        }
        Ok(())
    });
    let mut stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    let mut message = [b'm'; MESSAGE_BYTES];
    let mut samples = Vec::with_capacity(ROUND_TRIP_SAMPLES);
    for _ in 0..ROUND_TRIP_SAMPLES {
        let began = Instant::now();
        stream.write_all(&message)?;
        stream.read_exact(&mut message)?;
        samples.push(began.elapsed());
    }
    drop(stream);
    echo.join()
        .map_err(|_| std::io::Error::other("the echo thread panicked"))??;
    Ok(samples)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_two_syncs_and_a_round_trip() {
        let floor = Floor {
            sync_alone: Duration::from_millis(4),
            sync_concurrent: Duration::from_micros(300),
            writers: 3,
            round_trip: Duration::from_micros(40),
        };
        assert_eq!(floor.total(), Duration::from_micros(640));
        let calm = Floor {
            sync_alone: Duration::from_micros(100),
            ..floor
        };
        assert_eq!(calm.total(), Duration::from_micros(240));
        let samples = [5, 1, 4, 2, 3].map(Duration::from_millis).to_vec();
        assert_eq!(median(samples), Duration::from_millis(3));
    }
}
