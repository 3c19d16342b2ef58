//! The writer's next unit of work, formed from the requests waiting for it.
//!
//! One function serves both the production shell's leaders (`shell.rs`) and
//! the simulator's scheduler, so the simulator runs the grouping users run:
//! a shred is done on its own; appends are committed together, as one group
//! commit of at most a given number of requests, up to the next shred. The
//! callers' order is kept: a shred behind appends waits for them, appends
//! behind a shred wait for it.

use std::collections::VecDeque;

/// A request to the writer: an append (of type `A`) or a shred (`S`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<A, S> {
    Append(A),
    Shred(S),
}

/// What the writer does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work<A, S> {
    /// One group commit of these appends, in order.
    Commit(Vec<A>),
    Shred(S),
}

/// Where requests wait for the writer, in arrival order.
pub trait Queue<A, S> {
    /// The next request, if one is waiting (never blocks).
    fn take(&mut self) -> Option<Request<A, S>>;
    /// Puts a request taken too early back at the front.
    fn put_back(&mut self, request: Request<A, S>);
}

impl<A, S> Queue<A, S> for VecDeque<Request<A, S>> {
    fn take(&mut self) -> Option<Request<A, S>> {
        self.pop_front()
    }
    fn put_back(&mut self, request: Request<A, S>) {
        self.push_front(request);
    }
}

/// The writer's next unit of work from `queue`, taking at most `max`
/// appends into one group commit; `None` if nothing waits.
pub fn next_work<A, S>(queue: &mut impl Queue<A, S>, max: usize) -> Option<Work<A, S>> {
    assert!(max >= 1, "a group commit takes at least one request");
    match queue.take()? {
        Request::Shred(shred) => Some(Work::Shred(shred)),
        Request::Append(first) => {
            let mut appends = vec![first];
            while appends.len() < max {
                match queue.take() {
                    Some(Request::Append(append)) => appends.push(append),
                    Some(shred) => {
                        queue.put_back(shred);
                        break;
                    }
                    None => break,
                }
            }
            Some(Work::Commit(appends))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(requests: &str) -> VecDeque<Request<char, char>> {
        requests.chars().map(|c| if c.is_uppercase() { Request::Shred(c) } else { Request::Append(c) }).collect()
    }

    fn drain(requests: &str, max: usize) -> Vec<Work<char, char>> {
        let mut q = queue(requests);
        std::iter::from_fn(|| next_work(&mut q, max)).collect()
    }

    #[test]
    fn appends_group_up_to_the_limit_and_the_next_shred_in_order() {
        use Work::{Commit, Shred};
        assert_eq!(
            drain("abcXdeYZf", 8),
            [
                Commit(vec!['a', 'b', 'c']),
                Shred('X'),
                Commit(vec!['d', 'e']),
                Shred('Y'),
                Shred('Z'),
                Commit(vec!['f'])
            ]
        );
        assert_eq!(drain("abcde", 2), [Commit(vec!['a', 'b']), Commit(vec!['c', 'd']), Commit(vec!['e'])]);
        assert_eq!(drain("", 3), []);
    }
}
