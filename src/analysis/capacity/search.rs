//! The search over levels: geometric steps from the scenario as written (factor 1) until an SLO
//! breaks (or, when factor 1 already breaks, down until one passes), then bisection (geometric
//! means) between the highest pass and the lowest failure until they are within the resolution.
//! A step the intervals cannot decide is run again, each time twice as long; one the generator
//! could not serve ends the search.

use crate::model::capacity::{Outcome, StepVerdict};

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Run this factor for the step length times `2^extension`.
    Run {
        /// Multiple of the scenario as written.
        factor: f64,
        /// How many times this factor has been run before (undecided each time).
        extension: u32,
    },
    /// The search is over.
    Stop(Outcome),
}

/// The state of a search.
#[derive(Debug, Clone)]
pub struct Search {
    growth: f64,
    resolution: f64,
    max_factor: f64,
    min_factor: f64,
    max_extensions: u32,
    /// The highest factor that passed.
    pub pass: Option<f64>,
    /// The lowest factor that failed.
    pub fail: Option<f64>,
    broken_as_written: bool,
    current: (f64, u32),
}

impl Search {
    /// A search that grows by `growth` per step up to `max_factor` (and down to its inverse),
    /// bisects to `resolution` (0.05: within 5%) and runs an undecided level at most
    /// `max_extensions` more times.
    pub fn new(growth: f64, resolution: f64, max_factor: f64, max_extensions: u32) -> Search {
        Search {
            growth,
            resolution,
            max_factor,
            min_factor: 1.0 / max_factor,
            max_extensions,
            pass: None,
            fail: None,
            broken_as_written: false,
            current: (1.0, 0),
        }
    }

    /// The first step: the scenario as written.
    pub fn first(&self) -> Next {
        Next::Run {
            factor: 1.0,
            extension: 0,
        }
    }

    /// Takes the verdict of the step just run and says what comes next.
    pub fn next(&mut self, verdict: StepVerdict) -> Next {
        let (f, ext) = self.current;
        match verdict {
            StepVerdict::Untrustworthy => return Next::Stop(Outcome::GeneratorLimited),
            StepVerdict::Interrupted => return Next::Stop(Outcome::Interrupted),
            StepVerdict::Undecided if ext < self.max_extensions => {
                self.current = (f, ext + 1);
                return Next::Run {
                    factor: f,
                    extension: ext + 1,
                };
            }
            StepVerdict::Undecided => return Next::Stop(Outcome::Undecided),
            StepVerdict::Pass => self.pass = Some(self.pass.map_or(f, |p| p.max(f))),
            StepVerdict::Fail => {
                if f == 1.0 {
                    self.broken_as_written = true;
                }
                self.fail = Some(self.fail.map_or(f, |x| x.min(f)));
            }
        }
        let next = match (self.pass, self.fail) {
            (_, None) if f >= self.max_factor => return Next::Stop(Outcome::BeyondMaxFactor),
            (_, None) => (f * self.growth).min(self.max_factor),
            (None, Some(_)) if f <= self.min_factor => return Next::Stop(self.done()),
            (None, Some(_)) => (f / self.growth).max(self.min_factor),
            (Some(p), Some(x)) if x / p <= 1.0 + self.resolution => return Next::Stop(self.done()),
            (Some(p), Some(x)) => {
                let mid = (p * x).sqrt();
                // A resolution finer than f64 can split: the bracket is as narrow as it gets.
                if mid <= p || mid >= x {
                    return Next::Stop(self.done());
                }
                mid
            }
        };
        self.current = (next, 0);
        Next::Run {
            factor: next,
            extension: 0,
        }
    }

    /// Ends the search at the current bracket: the next level would run the same users as a
    /// level already run (closed flows round to whole users).
    pub fn exhausted(&self) -> Next {
        Next::Stop(self.done())
    }

    fn done(&self) -> Outcome {
        if self.broken_as_written {
            Outcome::BrokenAsWritten
        } else {
            Outcome::Found
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a system that passes every factor up to `knee`.
    fn search(knee: f64) -> (Outcome, Vec<f64>, Search) {
        let mut s = Search::new(2.0, 0.05, 64.0, 2);
        let mut ran = Vec::new();
        let mut next = s.first();
        while let Next::Run { factor, .. } = next {
            ran.push(factor);
            assert!(ran.len() < 40, "{ran:?}");
            next = s.next(if factor <= knee {
                StepVerdict::Pass
            } else {
                StepVerdict::Fail
            });
        }
        let Next::Stop(o) = next else { unreachable!() };
        (o, ran, s)
    }

    #[test]
    fn finds_the_knee_above_and_below_the_scenario_within_the_resolution() {
        for knee in [1.0, 3.4, 7.9, 0.3, 0.9] {
            let (outcome, ran, s) = search(knee);
            let (p, f) = (s.pass.unwrap(), s.fail.unwrap());
            assert!(
                p <= knee && f > knee && f / p <= 1.05,
                "{knee}: {p}..{f} {ran:?}"
            );
            let want = if knee < 1.0 {
                Outcome::BrokenAsWritten
            } else {
                Outcome::Found
            };
            assert_eq!(outcome, want, "{knee}");
        }
    }

    #[test]
    fn stops_at_the_largest_factor_and_on_an_untrustworthy_step() {
        let (outcome, ran, _) = search(1000.0);
        assert_eq!(outcome, Outcome::BeyondMaxFactor);
        assert_eq!(*ran.last().unwrap(), 64.0);
        let mut s = Search::new(2.0, 0.05, 64.0, 2);
        s.next(StepVerdict::Pass);
        assert_eq!(
            s.next(StepVerdict::Untrustworthy),
            Next::Stop(Outcome::GeneratorLimited)
        );
    }

    #[test]
    fn an_undecided_step_is_run_again_longer_never_guessed() {
        let mut s = Search::new(2.0, 0.05, 64.0, 2);
        assert_eq!(
            s.next(StepVerdict::Undecided),
            Next::Run {
                factor: 1.0,
                extension: 1
            }
        );
        assert_eq!(
            s.next(StepVerdict::Undecided),
            Next::Run {
                factor: 1.0,
                extension: 2
            }
        );
        assert_eq!(
            s.next(StepVerdict::Undecided),
            Next::Stop(Outcome::Undecided)
        );
    }
}
