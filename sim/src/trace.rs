//! The run's trace: one line per scheduled event, hashed as it goes. Two
//! runs of one seed must produce the same hash; the tail is printed with a
//! failure, the whole trace written with `--trace`.

use std::collections::VecDeque;

const TAIL_LINES: usize = 40;

pub struct Trace {
    hasher: blake3::Hasher,
    tail: VecDeque<String>,
    full: Option<Vec<String>>,
}

impl Trace {
    pub fn new(keep_all: bool) -> Self {
        Self { hasher: blake3::Hasher::new(), tail: VecDeque::new(), full: keep_all.then(Vec::new) }
    }

    pub fn line(&mut self, line: String) {
        self.hasher.update(line.as_bytes()).update(b"\n");
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        if let Some(full) = &mut self.full {
            full.push(line.clone());
        }
        self.tail.push_back(line);
    }

    pub fn hash(&self) -> String {
        self.hasher.finalize().to_hex()[..16].to_owned()
    }

    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }

    pub fn take_full(&mut self) -> Option<Vec<String>> {
        self.full.take()
    }
}
