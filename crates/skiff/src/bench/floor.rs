//! The floor under one commit's latency on this machine: the leader makes
//! the entry durable, sends it to a follower, the follower makes it durable
//! (the answer's way back is the other half of the round trip). So
//! `floor = sync + loopback round trip + sync`, each measured here and now:
//!
//! * sync: append a small record to a file in the data directory's file
//!   system and `fdatasync` it, as the write-ahead log does; the median of
//!   [`SYNC_SAMPLES`] by each of `writers` threads syncing files of their
//!   own at the same time, as the nodes of a cluster do. On this machine
//!   (a virtual machine on ext4) one lone writer's syncs are much slower
//!   (a median of about 4 ms against about 0.12 ms with three writers):
//!   measuring only a lone writer would put the floor far below what the
//!   nodes' own syncs achieve, so the lone figure is printed beside it but
//!   the floor uses the concurrent one.
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
    /// The median `write` + `fdatasync` of a small append, with as many
    /// writers syncing at once as the cluster has nodes.
    pub sync: Duration,
    /// The same with one writer alone, for comparison.
    pub sync_alone: Duration,
    /// How many writers synced at once for `sync`.
    pub writers: usize,
    /// The median loopback TCP round trip of a small message.
    pub round_trip: Duration,
}

impl Floor {
    /// Leader sync + round trip + follower sync.
    pub fn total(&self) -> Duration {
        self.sync * 2 + self.round_trip
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
        sync: median(concurrent),
        sync_alone: median(sync_samples(dir)?),
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
            sync: Duration::from_micros(300),
            sync_alone: Duration::from_millis(4),
            writers: 3,
            round_trip: Duration::from_micros(40),
        };
        assert_eq!(floor.total(), Duration::from_micros(640));
        let samples = [5, 1, 4, 2, 3].map(Duration::from_millis).to_vec();
        assert_eq!(median(samples), Duration::from_millis(3));
    }
}
