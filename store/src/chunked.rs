//! A growable list stored in fixed-size chunks: appending never moves what
//! is already there (a `Vec` copies everything each time it doubles), and
//! indexing stays O(1).

/// Items per chunk (a power of two).
const CHUNK_LEN: usize = 1 << 14;

#[derive(Clone, Debug)]
pub struct ChunkedVec<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for ChunkedVec<T> {
    fn default() -> Self {
        Self { chunks: Vec::new(), len: 0 }
    }
}

impl<T> ChunkedVec<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn push(&mut self, item: T) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK_LEN => chunk.push(item),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK_LEN);
                chunk.push(item);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    pub fn pop(&mut self) -> Option<T> {
        let chunk = self.chunks.last_mut()?;
        let item = chunk.pop()?;
        if chunk.is_empty() {
            self.chunks.pop();
        }
        self.len -= 1;
        Some(item)
    }

    pub fn get(&self, index: usize) -> Option<&T> {
        self.chunks.get(index / CHUNK_LEN)?.get(index % CHUNK_LEN)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_vec_across_chunk_boundaries() {
        let mut chunked = ChunkedVec::default();
        let mut plain = Vec::new();
        for i in 0..(3 * CHUNK_LEN + 5) {
            chunked.push(i);
            plain.push(i);
        }
        for _ in 0..(CHUNK_LEN + 7) {
            assert_eq!(chunked.pop(), plain.pop());
        }
        assert_eq!(chunked.len(), plain.len());
        assert!((0..plain.len()).all(|i| chunked.get(i) == plain.get(i)));
        assert_eq!(chunked.get(plain.len()), None);
        while chunked.pop().is_some() {}
        assert!(chunked.len() == 0 && chunked.chunks.is_empty());
    }
}
