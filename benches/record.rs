//! Recording: one request sample into this thread's shard, and the collector's interval merge.

#![allow(missing_docs, clippy::unwrap_used)] // criterion macros generate undocumented items

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use stampede::metrics::{FlowKeys, KeyTable, Registry, RequestSample};

fn keys(steps: usize) -> Arc<KeyTable> {
    Arc::new(KeyTable {
        flows: vec![FlowKeys {
            name: "f".into(),
            steps: (0..steps).map(|i| format!("s{i}")).collect(),
            base: 0,
        }],
        steps,
    })
}

fn sample(i: u64) -> RequestSample {
    RequestSample {
        latency: Duration::from_micros(500 + i % 5000),
        service: Duration::from_micros(400 + i % 4000),
        ttfb: Some(Duration::from_micros(300 + i % 3000)),
        connect: None,
        tls: None,
        status: Some(200),
        error: None,
        bytes_in: 512,
        bytes_decoded: 512,
        bytes_out: 256,
        retry: false,
        checks: (1, 0),
        cookies_dropped: 0,
        sent: true,
        ..RequestSample::default()
    }
}

fn record(c: &mut Criterion) {
    let reg = Registry::new(keys(20));
    let mut i = 0u64;
    c.bench_function("record one request", |b| {
        b.iter(|| {
            i += 1;
            reg.request(black_box((i % 20) as usize), black_box(&sample(i)), None);
        })
    });
    c.bench_function("collect an interval of 20 keys × 1000 samples", |b| {
        b.iter_batched(
            || {
                let reg = Registry::new(keys(20));
                for i in 0..20_000u64 {
                    reg.request((i % 20) as usize, &sample(i), None);
                }
                reg
            },
            |reg| black_box(reg.collect()),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, record);
criterion_main!(benches);
