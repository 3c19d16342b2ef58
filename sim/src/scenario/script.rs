//! Explicit runs: a scenario whose `[script]` lists every choice of the
//! run's streams (the clients' operations and arguments, the scheduler's
//! think times and ties, crashes between steps, and every fault and crash
//! point of the disk), so `run` replays it exactly without a seed. A stream
//! that runs out makes its smallest choices (no fault, the first option,
//! zero). `shale-sim shrink` and `shale-sim from-fuzz` write these.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::rng::{Choice, SimRng};

/// The streams a script lists, by the label their seeded twins use.
pub const STREAMS: [&str; 5] = ["workload", "scheduler", "crashes", "disk", "reads"];

/// One recorded choice. Written as a number where TOML can hold it, as
/// `"max"` for the largest (a chance that said no), else as hex.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Value(pub u64);

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            u64::MAX => serializer.serialize_str("max"),
            v if v <= i64::MAX as u64 => serializer.serialize_i64(v as i64),
            v => serializer.serialize_str(&format!("{v:#x}")),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a choice: a number, \"max\" or 0x-hex")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
                u64::try_from(v).map(Value).map_err(|_| E::custom(format!("a choice is not negative: {v}")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
                Ok(Value(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
                if v == "max" {
                    return Ok(Value(u64::MAX));
                }
                crate::parse_seed(v).map(Value).ok_or_else(|| E::custom(format!("{v:?} is not a choice")))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Script {
    /// The seed of the store's own entropy (its keys and nonces); it
    /// decides no operation, fault or schedule.
    pub entropy_seed: Value,
    pub workload: Vec<Value>,
    pub scheduler: Vec<Value>,
    pub crashes: Vec<Value>,
    pub disk: Vec<Value>,
    /// The faults of readers' reads (the store's readers, apart from its
    /// writer and its recovery), so that a read more or less moves no
    /// fault of a write.
    pub reads: Vec<Value>,
}

impl Script {
    pub fn stream(&self, label: &str) -> &[Value] {
        match label {
            "workload" => &self.workload,
            "scheduler" => &self.scheduler,
            "crashes" => &self.crashes,
            "disk" => &self.disk,
            "reads" => &self.reads,
            _ => unreachable!("{label} is not a scripted stream"),
        }
    }

    pub fn stream_mut(&mut self, label: &str) -> &mut Vec<Value> {
        match label {
            "workload" => &mut self.workload,
            "scheduler" => &mut self.scheduler,
            "crashes" => &mut self.crashes,
            "disk" => &mut self.disk,
            "reads" => &mut self.reads,
            _ => unreachable!("{label} is not a scripted stream"),
        }
    }

    /// A replaying stream for `label`.
    pub fn rng(&self, label: &str) -> SimRng {
        let values: Vec<u64> = self.stream(label).iter().map(|v| v.0).collect();
        SimRng::given(&values)
    }

    /// Choices listed in all.
    pub fn len(&self) -> usize {
        STREAMS.iter().map(|s| self.stream(s).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a recording run drew, stream by stream, with what each value
/// decided (for a shrinker).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recorded {
    pub entropy_seed: u64,
    pub streams: BTreeMap<&'static str, Vec<Choice>>,
    /// Where each scheduler step began in each stream (in `STREAMS`
    /// order): a shrinker deletes whole steps across every stream.
    pub step_marks: Vec<[usize; STREAMS.len()]>,
}

impl Recorded {
    /// The script that replays the recorded run (without the smallest
    /// choices at the end of a stream: a stream that ran out makes them).
    pub fn script(&self) -> Script {
        let mut script = Script { entropy_seed: Value(self.entropy_seed), ..Script::default() };
        for (label, choices) in &self.streams {
            let end = choices.iter().rposition(|c| c.value != c.kind.smallest()).map_or(0, |i| i + 1);
            *script.stream_mut(label) = choices[..end].iter().map(|c| Value(c.value)).collect();
        }
        script
    }
}
