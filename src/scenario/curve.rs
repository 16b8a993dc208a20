//! Load curves as pure functions of time: the level (arrivals per second, or virtual users) at `t`,
//! its integral, and the integral's inverse.
//!
//! A curve is a sequence of pieces, each linear (ramp, hold, jump) or sinusoidal:
//!
//! ```text
//! level
//!  250 |                         ___
//!      |                        /   \        to 250/s over 10s (a spike), hold, back
//!   50 |       ________________/     \____
//!      |      /
//!    0 |_____/                                 to 50/s over 30s, hold 2m, ...
//!      +--------------------------------------> t
//! ```
//!
//! For an open flow the n-th arrival (from 0) is due at `time_of(x_n)`, where `x_n = n` for uniform
//! spacing and `x_n = E_1 + … + E_n` (unit-mean exponentials) for Poisson arrivals: the time change
//! that turns a unit-rate process into one with this rate. Due times therefore come from the run
//! clock and never drift, however late the scheduler wakes.

use std::f64::consts::TAU;

/// The shape of one piece.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// From one level to another, linearly (equal levels hold).
    Linear {
        /// Level at the start of the piece.
        from: f64,
        /// Level at the end of the piece.
        to: f64,
    },
    /// `base + amplitude·sin(2π·t/period)`, clamped at zero by validation (amplitude ≤ base).
    Sine {
        /// Level around which it oscillates.
        base: f64,
        /// Peak deviation.
        amplitude: f64,
        /// Length of one wave in seconds.
        period: f64,
    },
}

/// A piece of a curve, `len` seconds long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Piece {
    /// Seconds.
    pub len: f64,
    /// Shape over the piece.
    pub shape: Shape,
}

impl Piece {
    fn level(&self, t: f64) -> f64 {
        match self.shape {
            Shape::Linear { from, to } => {
                if self.len <= 0.0 {
                    to
                } else {
                    from + (to - from) * (t / self.len)
                }
            }
            Shape::Sine {
                base,
                amplitude,
                period,
            } => (base + amplitude * (TAU * t / period).sin()).max(0.0),
        }
    }

    /// Integral of the level from 0 to `t` within the piece.
    fn area(&self, t: f64) -> f64 {
        match self.shape {
            Shape::Linear { from, to } => {
                if self.len <= 0.0 {
                    0.0
                } else {
                    from * t + (to - from) * t * t / (2.0 * self.len)
                }
            }
            Shape::Sine {
                base,
                amplitude,
                period,
            } => base * t + amplitude * period / TAU * (1.0 - (TAU * t / period).cos()),
        }
    }

    /// The `t` within the piece where the area reaches `x` (0 ≤ x ≤ area(len)).
    fn invert(&self, x: f64) -> f64 {
        if let Shape::Linear { from, to } = self.shape {
            let slope = (to - from) / self.len;
            if slope.abs() < 1e-12 {
                return if from > 0.0 { x / from } else { self.len };
            }
            // slope/2·t² + from·t − x = 0, the root in [0, len].
            let disc = (from * from + 2.0 * slope * x).max(0.0);
            let t = (disc.sqrt() - from) / slope;
            return t.clamp(0.0, self.len);
        }
        // The area is non-decreasing, so bisection always converges; 60 rounds reach f64 precision.
        let (mut lo, mut hi) = (0.0, self.len);
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if self.area(mid) < x {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    }
}

/// A load curve: pieces laid end to end from t = 0.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Curve {
    pieces: Vec<Piece>,
}

impl Curve {
    /// A curve from pieces.
    pub fn new(pieces: Vec<Piece>) -> Curve {
        Curve { pieces }
    }

    /// A constant level for `len` seconds.
    pub fn constant(level: f64, len: f64) -> Curve {
        Curve::new(vec![Piece {
            len,
            shape: Shape::Linear {
                from: level,
                to: level,
            },
        }])
    }

    /// The pieces.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Total length in seconds.
    pub fn len(&self) -> f64 {
        self.pieces.iter().map(|p| p.len).sum()
    }

    /// True when the curve has no length.
    pub fn is_empty(&self) -> bool {
        self.len() <= 0.0
    }

    /// The level at `t` seconds (0 outside the curve).
    pub fn level_at(&self, t: f64) -> f64 {
        let mut start = 0.0;
        for p in &self.pieces {
            if t < start + p.len {
                return if t < start { 0.0 } else { p.level(t - start) };
            }
            start += p.len;
        }
        0.0
    }

    /// The highest level anywhere on the curve.
    pub fn peak(&self) -> f64 {
        self.pieces
            .iter()
            .map(|p| match p.shape {
                Shape::Linear { from, to } => from.max(to),
                Shape::Sine {
                    base, amplitude, ..
                } => base + amplitude.abs(),
            })
            .fold(0.0, f64::max)
    }

    /// The integral of the level from 0 to `t` (expected arrivals by `t` for a rate curve).
    pub fn cumulative(&self, t: f64) -> f64 {
        let mut start = 0.0;
        let mut sum = 0.0;
        for p in &self.pieces {
            if t <= start {
                break;
            }
            let within = (t - start).min(p.len);
            sum += p.area(within);
            start += p.len;
        }
        sum
    }

    /// The integral over the whole curve.
    pub fn total(&self) -> f64 {
        self.cumulative(self.len())
    }

    /// How many uniform arrivals the curve makes: one at each whole unit of its integral below
    /// the total (the executor's arrival n is due where the integral reaches n).
    pub fn arrivals(&self) -> u64 {
        (self.total() - 1e-9).ceil().max(0.0) as u64
    }

    /// The earliest `t` at which the integral reaches `x`, or `None` past the curve's end.
    pub fn time_of(&self, x: f64) -> Option<f64> {
        let mut start = 0.0;
        let mut acc = 0.0;
        for p in &self.pieces {
            let area = p.area(p.len);
            if x < acc + area || (x <= acc && area > 0.0) {
                return Some(start + p.invert(x - acc));
            }
            acc += area;
            start += p.len;
        }
        None
    }

    /// Every level multiplied by `k` (for `--scale`).
    pub fn scaled(&self, k: f64) -> Curve {
        Curve::new(
            self.pieces
                .iter()
                .map(|p| Piece {
                    len: p.len,
                    shape: match p.shape {
                        Shape::Linear { from, to } => Shape::Linear {
                            from: from * k,
                            to: to * k,
                        },
                        Shape::Sine {
                            base,
                            amplitude,
                            period,
                        } => Shape::Sine {
                            base: base * k,
                            amplitude: amplitude * k,
                            period,
                        },
                    },
                })
                .collect(),
        )
    }

    /// The curve cut off after `len` seconds (for `--duration`).
    pub fn truncated(&self, len: f64) -> Curve {
        let mut out = Vec::new();
        let mut start = 0.0;
        for p in &self.pieces {
            if start >= len {
                break;
            }
            let keep = (len - start).min(p.len);
            let shape = match p.shape {
                Shape::Linear { from, .. } if keep < p.len => Shape::Linear {
                    from,
                    to: p.level(keep),
                },
                s => s,
            };
            out.push(Piece { len: keep, shape });
            start += p.len;
        }
        Curve::new(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp_hold() -> Curve {
        Curve::new(vec![
            Piece {
                len: 10.0,
                shape: Shape::Linear {
                    from: 0.0,
                    to: 100.0,
                },
            },
            Piece {
                len: 5.0,
                shape: Shape::Linear {
                    from: 100.0,
                    to: 100.0,
                },
            },
        ])
    }

    #[test]
    fn cumulative_is_the_area_under_the_curve() {
        let c = ramp_hold();
        assert!((c.cumulative(10.0) - 500.0).abs() < 1e-9);
        assert!((c.total() - 1000.0).abs() < 1e-9);
        assert_eq!(c.level_at(5.0), 50.0);
        assert_eq!(c.level_at(16.0), 0.0);
        assert_eq!(c.peak(), 100.0);
    }

    #[test]
    fn time_of_inverts_cumulative() {
        let c = ramp_hold();
        for x in [0.5, 1.0, 100.0, 499.0, 500.0, 750.0, 999.0] {
            let t = c.time_of(x).unwrap();
            assert!((c.cumulative(t) - x).abs() < 1e-6, "x={x} t={t}");
        }
        assert_eq!(c.time_of(1000.5), None);
    }

    #[test]
    fn uniform_arrivals_at_constant_rate_are_evenly_spaced() {
        let c = Curve::constant(200.0, 5.0);
        let times: Vec<f64> = (0..).map_while(|n| c.time_of(n as f64)).collect();
        assert_eq!(times.len(), 1000);
        assert!((times[1] - times[0] - 0.005).abs() < 1e-12);
    }

    #[test]
    fn sine_inverts_numerically() {
        let c = Curve::new(vec![Piece {
            len: 60.0,
            shape: Shape::Sine {
                base: 10.0,
                amplitude: 5.0,
                period: 30.0,
            },
        }]);
        assert!((c.total() - 600.0).abs() < 1e-6);
        let t = c.time_of(123.0).unwrap();
        assert!((c.cumulative(t) - 123.0).abs() < 1e-6);
    }

    #[test]
    fn scale_and_truncate() {
        let c = ramp_hold().scaled(2.0).truncated(5.0);
        assert!((c.len() - 5.0).abs() < 1e-12);
        assert!((c.level_at(4.999) - 99.98).abs() < 1e-6);
        // The doubled ramp reaches 100/s at 5 s: the area of that triangle.
        assert!((c.total() - 250.0).abs() < 1e-9);
    }
}
