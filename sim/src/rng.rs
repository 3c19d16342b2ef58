//! The one source of choices in a simulation. Every decision of a run (each
//! client's next operation and its arguments, every fault, crash point and
//! tie in the schedule) is drawn here, from one of three sources:
//!
//! - a ChaCha8 stream derived from the run's seed, one per concern, so that
//!   a change in how often one concern draws does not shift the others;
//! - the values a script lists for the stream (a recorded or shrunk run);
//! - fuzzer bytes, shared by every stream of the run in draw order.
//!
//! A script or fuzz input that runs out answers every later draw with its
//! smallest choice: no fault, the first option, zero. So a shorter input is
//! a simpler run. A stream can record what it drew as script values that
//! replay the same decisions.

use std::sync::{Arc, Mutex};

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// Bytes a fuzzer gave, consumed by every stream of a run.
#[derive(Debug)]
pub struct Bytes {
    data: Vec<u8>,
    at: usize,
}

impl Bytes {
    pub fn shared(data: Vec<u8>) -> Arc<Mutex<Bytes>> {
        Arc::new(Mutex::new(Bytes { data, at: 0 }))
    }

    /// The next `n` bytes as a big-endian number, or `None` once too few
    /// are left.
    fn take(&mut self, n: usize) -> Option<u64> {
        let bytes = self.data.get(self.at..self.at + n)?;
        self.at += n;
        Some(bytes.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b)))
    }

    fn fill(&mut self, buf: &mut [u8]) {
        let n = buf.len().min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        buf[n..].fill(0);
        self.at += n;
    }
}

#[derive(Clone, Debug)]
enum Source {
    Seeded(Box<ChaCha8Rng>),
    Given { values: Arc<[u64]>, at: usize },
    Bytes(Arc<Mutex<Bytes>>),
}

/// What kind of decision a recorded value made, so that a shrinker knows
/// its smallest form.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Raw,
    /// A number below this bound; smallest: 0.
    Below(u64),
    /// A yes/no with this probability of yes; smallest: no.
    Chance,
    /// A fraction of one; smallest: 0.
    Unit,
    /// Bytes of a buffer; smallest: zeros.
    Fill,
}

impl Kind {
    /// The value that makes this kind of decision its smallest choice.
    pub fn smallest(self) -> u64 {
        match self {
            Kind::Chance => u64::MAX,
            _ => 0,
        }
    }
}

/// A recorded draw: the value that replays it, and what it decided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    pub value: u64,
    pub kind: Kind,
}

/// Probabilities at or below this are never drawn from fuzzer bytes (two
/// bytes decide a chance).
const BYTES_CHANCE_STEPS: f64 = 65536.0;

#[derive(Clone, Debug)]
pub struct SimRng {
    source: Source,
    record: Option<Vec<Choice>>,
}

impl SimRng {
    pub fn new(seed: u64) -> Self {
        Self { source: Source::Seeded(Box::new(ChaCha8Rng::seed_from_u64(seed))), record: None }
    }

    /// An independent stream for `label`, fixed by the seed and the label.
    pub fn stream(seed: u64, label: &str) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(&seed.to_le_bytes()).update(label.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(h.finalize().as_bytes());
        Self { source: Source::Seeded(Box::new(ChaCha8Rng::from_seed(key))), record: None }
    }

    /// A stream that replays `values`, then makes the smallest choices.
    pub fn given(values: &[u64]) -> Self {
        Self { source: Source::Given { values: values.into(), at: 0 }, record: None }
    }

    /// A stream drawing from fuzzer bytes shared with the run's other
    /// streams.
    pub fn bytes(bytes: &Arc<Mutex<Bytes>>) -> Self {
        Self { source: Source::Bytes(bytes.clone()), record: None }
    }

    /// An independent copy that draws what this one would, without
    /// recording; a copy of a fuzz input's stream makes the smallest
    /// choices (the input is the original's).
    pub fn detached(&self) -> SimRng {
        let source = match &self.source {
            Source::Bytes(_) => Source::Given { values: Arc::new([]), at: 0 },
            other => other.clone(),
        };
        SimRng { source, record: None }
    }

    /// Records every draw from now on (see [`Self::take_record`]).
    pub fn recording(mut self) -> Self {
        self.record = Some(Vec::new());
        self
    }

    /// How many draws were recorded so far.
    pub fn record_len(&self) -> usize {
        self.record.as_ref().map_or(0, Vec::len)
    }

    /// What was drawn since recording began, as values that replay it.
    pub fn take_record(&mut self) -> Vec<Choice> {
        self.record.take().unwrap_or_default()
    }

    fn note(&mut self, value: u64, kind: Kind) {
        if let Some(record) = &mut self.record {
            record.push(Choice { value, kind });
        }
    }

    /// The next script or seeded value; `None` once a script ran out.
    fn value(&mut self) -> Option<u64> {
        match &mut self.source {
            Source::Seeded(rng) => Some(rng.next_u64()),
            Source::Given { values, at } => {
                let v = values.get(*at).copied();
                *at += 1;
                v
            }
            Source::Bytes(_) => unreachable!("fuzzer bytes are drawn per kind"),
        }
    }

    fn with_bytes<T>(&self, f: impl FnOnce(&mut Bytes) -> T) -> Option<T> {
        match &self.source {
            Source::Bytes(b) => Some(f(&mut b.lock().unwrap_or_else(std::sync::PoisonError::into_inner))),
            _ => None,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let v = match self.with_bytes(|b| b.take(8)) {
            Some(v) => v.unwrap_or(0),
            None => self.value().unwrap_or(0),
        };
        self.note(v, Kind::Raw);
        v
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let fuzzed = self.with_bytes(|b| b.fill(buf)).is_some();
        if !fuzzed {
            if let Source::Seeded(rng) = &mut self.source {
                rng.fill_bytes(buf);
            } else {
                for chunk in buf.chunks_mut(8) {
                    let v = self.value().unwrap_or(0).to_le_bytes();
                    chunk.copy_from_slice(&v[..chunk.len()]);
                }
            }
        }
        if self.record.is_some() {
            for chunk in buf.chunks(8) {
                let mut v = [0u8; 8];
                v[..chunk.len()].copy_from_slice(chunk);
                self.note(u64::from_le_bytes(v), Kind::Fill);
            }
        }
    }

    /// Uniform in `0..n`; `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        let r = match self.with_bytes(|b| b.take(bytes_for(n - 1)).map_or(0, |v| v % n)) {
            Some(r) => r,
            // Lemire's multiply-shift; the tiny bias is irrelevant here.
            None => self.value().map_or(0, |v| ((u128::from(v) * u128::from(n)) >> 64) as u64),
        };
        // The smallest value that multiply-shifts to `r`.
        self.note(((u128::from(r) << 64).div_ceil(u128::from(n))) as u64, Kind::Below(n));
        r
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi);
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        let v = match self.with_bytes(|b| b.take(2).map_or(0, |v| v << 48)) {
            Some(v) => v,
            None => self.value().unwrap_or(0),
        };
        let u = (v >> 11) as f64 / (1u64 << 53) as f64;
        self.note(v >> 11 << 11, Kind::Unit);
        u
    }

    /// True with probability `p`; a script or fuzz input that ran out
    /// says no (to anything less than certain).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        let yes = match self.with_bytes(|b| b.take(2).is_some_and(|v| v as f64 >= BYTES_CHANCE_STEPS * (1.0 - p))) {
            Some(yes) => yes,
            None => self.value().is_some_and(|v| ((v >> 11) as f64 / (1u64 << 53) as f64) < p),
        };
        // A certainty (a full disk refusing a write) is no choice: it holds
        // even when the input ran out.
        let yes = yes || p >= 1.0;
        self.note(if yes { 0 } else { u64::MAX }, Kind::Chance);
        yes
    }

    /// An index drawn with the given weights; `None` if they sum to zero.
    pub fn weighted(&mut self, weights: &[u32]) -> Option<usize> {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        if total == 0 {
            return None;
        }
        let mut pick = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if pick < u64::from(w) {
                return Some(i);
            }
            pick -= u64::from(w);
        }
        unreachable!("pick below the total weight")
    }
}

/// Bytes needed to hold `max`.
fn bytes_for(max: u64) -> usize {
    (64 - max.leading_zeros() as usize).div_ceil(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_independent() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = SimRng::stream(7, "disk");
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = SimRng::stream(7, "disk");
                move |_| r.next_u64()
            })
            .collect();
        let c = SimRng::stream(7, "workload").next_u64();
        assert_eq!(a, b);
        assert_ne!(a[0], c);
    }

    #[test]
    fn weighted_respects_zero_weights() {
        let mut r = SimRng::new(1);
        for _ in 0..1000 {
            assert_ne!(r.weighted(&[1, 0, 3]), Some(1));
        }
        assert_eq!(r.weighted(&[0, 0]), None);
    }

    /// Every kind of draw, as a run makes them.
    fn draws(r: &mut SimRng) -> (Vec<u64>, Vec<bool>, Vec<u64>, [u8; 13]) {
        let below: Vec<u64> = [1, 2, 7, 300, 1 << 40, u64::MAX].iter().map(|n| r.below(*n)).collect();
        let chances: Vec<bool> = [0.0, 0.001, 0.5, 0.9, 0.999].iter().map(|p| r.chance(*p)).collect();
        let mut units: Vec<u64> = (0..3).map(|_| (r.unit() * 1e9) as u64).collect();
        units.push(r.next_u64());
        let mut buf = [0u8; 13];
        r.fill(&mut buf);
        (below, chances, units, buf)
    }

    #[test]
    fn a_recording_replays_the_same_decisions() {
        for source in
            [SimRng::stream(3, "x"), SimRng::bytes(&Bytes::shared((0..=255u8).rev().cycle().take(90).collect()))]
        {
            let mut first = source.recording();
            let drawn = draws(&mut first);
            let values: Vec<u64> = first.take_record().iter().map(|c| c.value).collect();
            let mut again = SimRng::given(&values).recording();
            assert_eq!(draws(&mut again), drawn);
            let replayed: Vec<u64> = again.take_record().iter().map(|c| c.value).collect();
            assert_eq!(replayed, values, "a replay records what it replayed");
        }
    }

    #[test]
    fn a_script_that_ran_out_makes_the_smallest_choices() {
        let (below, chances, units, buf) = draws(&mut SimRng::given(&[]));
        assert!(below.iter().all(|v| *v == 0));
        assert!(chances.iter().all(|yes| !yes), "no more faults");
        assert!(units.iter().all(|v| *v == 0) && buf == [0; 13]);
        let (below, chances, _, _) = draws(&mut SimRng::bytes(&Bytes::shared(Vec::new())));
        assert!(below.iter().all(|v| *v == 0) && chances.iter().all(|yes| !yes));
        let mut r = SimRng::given(&[Kind::Chance.smallest(), Kind::Below(9).smallest()]);
        assert!(!r.chance(0.99) && r.below(9) == 0 && r.chance(1.0), "a certainty holds");
    }
}
