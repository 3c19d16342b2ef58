//! A latency histogram that survives a trip through a report file: kept as
//! its non-empty buckets, so that shard reports merge into exactly the
//! histogram one unsharded sweep would have recorded.

use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Significant decimal digits every histogram keeps (0.1 % resolution).
const SIGNIFICANT_DIGITS: u8 = 3;

/// Quantiles a report shows, with their names.
pub const QUANTILES: [(&str, f64); 5] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0)];

#[derive(Clone, Debug)]
pub struct Hist(Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        Hist(Histogram::new(SIGNIFICANT_DIGITS).unwrap_or_else(|e| unreachable!("{SIGNIFICANT_DIGITS} digits: {e}")))
    }
}

impl PartialEq for Hist {
    fn eq(&self, other: &Self) -> bool {
        self.buckets() == other.buckets()
    }
}

impl Hist {
    pub fn record(&mut self, value: u64) {
        // The histogram grows to any value; recording cannot fail.
        self.0.record(value).unwrap_or_else(|e| unreachable!("auto-resizing histogram refused {value}: {e}"));
    }

    pub fn add(&mut self, other: &Hist) {
        self.0.add(&other.0).unwrap_or_else(|e| unreachable!("auto-resizing histograms always add: {e}"));
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at `q` (0..=1), or 0 for an empty histogram.
    pub fn quantile(&self, q: f64) -> u64 {
        match (self.0.is_empty(), q >= 1.0) {
            (true, _) => 0,
            (false, true) => self.0.max(),
            (false, false) => self.0.value_at_quantile(q),
        }
    }

    /// Every non-empty bucket: (a value in it, how many values it holds).
    fn buckets(&self) -> Vec<(u64, u64)> {
        self.0.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect()
    }
}

/// How a histogram is written: its count and quantiles for people, its
/// buckets for merging.
#[derive(Serialize, Deserialize)]
struct Written {
    count: u64,
    quantiles: Vec<(String, u64)>,
    buckets: Vec<(u64, u64)>,
}

impl Serialize for Hist {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let quantiles = QUANTILES.iter().map(|(name, q)| ((*name).to_owned(), self.quantile(*q))).collect();
        Written { count: self.count(), quantiles, buckets: self.buckets() }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let written = Written::deserialize(deserializer)?;
        let mut hist = Hist::default();
        for (value, count) in written.buckets {
            hist.0.record_n(value, count).map_err(serde::de::Error::custom)?;
        }
        if hist.count() != written.count {
            return Err(serde::de::Error::custom(format!(
                "histogram buckets hold {} values, its count says {}",
                hist.count(),
                written.count
            )));
        }
        Ok(hist)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_histogram_reads_back_equal_and_merges_exactly() {
        let (mut a, mut b, mut whole) = (Hist::default(), Hist::default(), Hist::default());
        for v in 0..10_000u64 {
            let value = v * v * 37 + 1;
            if v % 3 == 0 { &mut a } else { &mut b }.record(value);
            whole.record(value);
        }
        let a: Hist = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        let b: Hist = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        let mut merged = a.clone();
        merged.add(&b);
        assert_eq!(merged, whole);
        assert_eq!(serde_json::to_string(&merged).unwrap(), serde_json::to_string(&whole).unwrap());
        assert_ne!(a, whole, "a part is not the whole");
    }

    #[test]
    fn a_histogram_whose_count_disagrees_is_refused() {
        let text = r#"{"count":3,"quantiles":[],"buckets":[[10,1]]}"#;
        assert!(serde_json::from_str::<Hist>(text).is_err());
    }
}
