//! Due-time computation: the n-th arrival's offset on each kind of curve.

#![allow(missing_docs, clippy::unwrap_used)] // criterion macros generate undocumented items

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use stampede::scenario::curve::{Curve, Piece, Shape};

fn due_times(c: &mut Criterion) {
    let constant = Curve::constant(4000.0, 60.0);
    let stages = Curve::new(vec![
        Piece {
            len: 30.0,
            shape: Shape::Linear {
                from: 0.0,
                to: 50.0,
            },
        },
        Piece {
            len: 120.0,
            shape: Shape::Linear {
                from: 50.0,
                to: 50.0,
            },
        },
        Piece {
            len: 10.0,
            shape: Shape::Linear {
                from: 50.0,
                to: 250.0,
            },
        },
        Piece {
            len: 60.0,
            shape: Shape::Linear {
                from: 250.0,
                to: 250.0,
            },
        },
    ]);
    let sine = Curve::new(vec![Piece {
        len: 600.0,
        shape: Shape::Sine {
            base: 100.0,
            amplitude: 50.0,
            period: 60.0,
        },
    }]);
    let mut n = 0.0;
    for (name, curve) in [
        ("constant", &constant),
        ("ramp-hold stages", &stages),
        ("sine", &sine),
    ] {
        let total = curve.total();
        c.bench_function(&format!("time_of on a {name} curve"), |b| {
            b.iter(|| {
                n = (n + 1.0) % total;
                black_box(curve.time_of(black_box(n)))
            })
        });
    }
}

criterion_group!(benches, due_times);
criterion_main!(benches);
