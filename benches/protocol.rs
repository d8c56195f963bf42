//! Speed of decoding the worker → runner channel: newline-delimited JSON [`WorkerMessage`]s, read
//! by [`protocol::read_messages`], the runner's own reading loop.
//!
//! - `one scenario's stream`: the messages of a scenario with 20 warmup and 10 000 measured
//!   samples (started, phases, samples, progress every 100 iterations, a diagnosis, finished),
//!   reported per message (criterion's throughput in elements);
//! - `one sample line`: a single `sample` message, the bulk of every stream.
//!
//! Run with `cargo bench --bench protocol`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use leakcheck::diagnosis::Diagnosis;
use leakcheck::protocol::{self, Phase, Sample, SampleKind, Timings, WorkerMessage};

const WARMUP: u64 = 20;
const MEASURED: u64 = 10_000;

fn sample(iteration: u64, kind: SampleKind) -> WorkerMessage {
    let x = iteration as f64;
    WorkerMessage::Sample {
        sample: Sample {
            iteration,
            values: [
                2_000_000.0 + 36.0 * x + (iteration * 7919 % 113) as f64,
                3_000_000.0 + 16.0 * x,
                30_000_000.0 + 4096.0 * (iteration / 100) as f64,
                50_000.0 + x,
                60_000.0 + x,
                5.0,
            ],
        },
        kind,
    }
}

/// The messages of one scenario in the order a worker sends them.
fn stream() -> Vec<WorkerMessage> {
    let phase = |phase| WorkerMessage::Phase { phase };
    let mut messages = vec![
        WorkerMessage::Started {
            python_version: "3.11.2 (main, Mar 13 2023, 12:18:29) [GCC 12.2.0]".to_string(),
            pid: 4242,
        },
        phase(Phase::Prepare),
        phase(Phase::Setup),
        phase(Phase::Warmup),
    ];
    messages.extend((0..=WARMUP).map(|i| sample(i, SampleKind::Warmup)));
    messages.push(phase(Phase::Measure));
    for i in WARMUP + 1..=WARMUP + MEASURED {
        messages.push(sample(i, SampleKind::Measure));
        if i % 100 == 0 {
            messages.push(WorkerMessage::Progress { iteration: i });
        }
    }
    messages.push(phase(Phase::Diagnose));
    messages.push(WorkerMessage::Diagnosis {
        diagnosis: Box::new(Diagnosis {
            iterations: 100,
            notes: vec!["tracemalloc kept 10 frames".to_string()],
            ..Diagnosis::default()
        }),
    });
    messages.push(phase(Phase::Teardown));
    messages.push(WorkerMessage::Finished {
        timings: Timings::default(),
    });
    messages
}

/// The bytes on the channel: one JSON object a line, as the worker's `Channel::send` writes them.
fn encode(messages: &[WorkerMessage]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for message in messages {
        serde_json::to_writer(&mut bytes, message).expect("messages serialize");
        bytes.push(b'\n');
    }
    bytes
}

/// Reads every message from `channel` as the runner's channel thread does.
fn decode(channel: &[u8]) -> Vec<WorkerMessage> {
    let mut messages = Vec::new();
    protocol::read_messages(channel, |message| {
        messages.push(message);
        true
    });
    messages
}

fn bench_protocol(c: &mut Criterion) {
    let messages = stream();
    let bytes = encode(&messages);
    assert_eq!(decode(bytes.as_slice()).len(), messages.len());

    let mut group = c.benchmark_group("protocol");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.bench_function(
        format!("decode one scenario's stream ({} messages)", messages.len()),
        |b| b.iter(|| decode(black_box(bytes.as_slice()))),
    );
    let line = encode(&[sample(4711, SampleKind::Measure)]);
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode one sample line", |b| {
        b.iter(|| serde_json::from_slice::<WorkerMessage>(black_box(&line)))
    });
    group.finish();
}

criterion_group!(benches, bench_protocol);
criterion_main!(benches);
