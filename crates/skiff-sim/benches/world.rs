//! Simulated messages delivered per second of wall time, on one core.
//!
//! Each benchmark runs one whole seed (a 5-node cluster, three clients, 30 s
//! of simulated time, then the quiet period) with no trace text written;
//! criterion's throughput is the number of messages that run delivers.
//! `cargo bench -p skiff-sim` prints it as `thrpt: ... Kelem/s`/`Melem/s`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use skiff_sim::{run_seed, FaultProfile, Limit, SimOptions};
use std::hint::black_box;

fn options(profile: FaultProfile) -> SimOptions {
    let mut options = SimOptions::new(1).with_profile(profile);
    options.limit = Limit::Time { ms: 30_000 };
    options
}

fn messages_per_second(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulated messages delivered");
    group.sample_size(20);
    for profile in [FaultProfile::None, FaultProfile::Chaos] {
        let options = options(profile);
        let delivered = run_seed(&options).stats.messages_delivered;
        group.throughput(Throughput::Elements(delivered));
        group.bench_function(profile.name(), |b| {
            b.iter(|| black_box(run_seed(black_box(&options))))
        });
    }
    group.finish();
}

criterion_group!(benches, messages_per_second);
criterion_main!(benches);
