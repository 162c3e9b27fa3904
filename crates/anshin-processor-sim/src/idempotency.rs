//! Idempotency keys: the same key with the same request gets the first answer
//! again; the same key with a different request is refused.
//!
//! A request is identified by a keyed fingerprint of method, path and body
//! (the body holds card data, so it is never kept). Answers are kept, never
//! card data: the simulator's answers carry none. Entries lapse after the
//! configured time (24 h by default), oldest first.

use std::collections::{HashMap, VecDeque};

/// A stored answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

#[derive(Debug)]
enum Entry {
    InFlight {
        request: [u8; 32],
        created: i64,
    },
    Done {
        request: [u8; 32],
        created: i64,
        answer: Answer,
    },
}

impl Entry {
    fn request(&self) -> &[u8; 32] {
        match self {
            Self::InFlight { request, .. } | Self::Done { request, .. } => request,
        }
    }

    fn created(&self) -> i64 {
        match self {
            Self::InFlight { created, .. } | Self::Done { created, .. } => *created,
        }
    }
}

/// What to do with a request that carries an idempotency key.
#[derive(Debug, PartialEq, Eq)]
pub enum Begin {
    /// First time: process it, then [`Store::finish`] or [`Store::release`].
    New,
    /// Seen before with the same request: send this answer again.
    Replay(Answer),
    /// The key was used for a different request.
    Mismatch,
    /// The first request with this key is still being processed.
    InFlight,
}

/// The idempotency keys of one simulator.
#[derive(Debug)]
pub struct Store {
    ttl: i64,
    entries: HashMap<String, Entry>,
    order: VecDeque<(i64, String)>,
}

impl Store {
    /// A store whose keys lapse after `ttl` seconds.
    pub fn new(ttl: i64) -> Self {
        Self {
            ttl,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Looks the key up and, if it is new, reserves it for this request.
    pub fn begin(&mut self, key: &str, request: [u8; 32], now: i64) -> Begin {
        self.expire(now);
        match self.entries.get(key) {
            Some(entry) if entry.request() != &request => Begin::Mismatch,
            Some(Entry::InFlight { .. }) => Begin::InFlight,
            Some(Entry::Done { answer, .. }) => Begin::Replay(answer.clone()),
            None => {
                self.entries.insert(
                    key.to_owned(),
                    Entry::InFlight {
                        request,
                        created: now,
                    },
                );
                self.order.push_back((now, key.to_owned()));
                Begin::New
            }
        }
    }

    /// Stores the answer to a request that [`Store::begin`] reserved.
    pub fn finish(&mut self, key: &str, answer: Answer) {
        if let Some(entry) = self.entries.get_mut(key) {
            *entry = Entry::Done {
                request: *entry.request(),
                created: entry.created(),
                answer,
            };
        }
    }

    /// Forgets a reserved key without an answer (the processor failed), so a
    /// retry is processed afresh.
    pub fn release(&mut self, key: &str) {
        if matches!(self.entries.get(key), Some(Entry::InFlight { .. })) {
            self.entries.remove(key);
        }
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is live.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn expire(&mut self, now: i64) {
        while let Some((created, key)) = self.order.front() {
            if now - created < self.ttl {
                break;
            }
            // A released and reused key has a newer entry: keep that one.
            if self.entries.get(key).is_some_and(|e| e.created() == *created) {
                self.entries.remove(key);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn answer(n: u8) -> Answer {
        Answer {
            status: 200,
            body: vec![n],
        }
    }

    #[test]
    fn same_request_replays_different_request_is_refused() {
        let mut store = Store::new(DAY);
        assert_eq!(store.begin("k", [1; 32], 0), Begin::New);
        assert_eq!(store.begin("k", [1; 32], 1), Begin::InFlight);
        store.finish("k", answer(7));
        assert_eq!(store.begin("k", [1; 32], 2), Begin::Replay(answer(7)));
        assert_eq!(store.begin("k", [2; 32], 3), Begin::Mismatch);
        assert_eq!(store.begin("other", [2; 32], 3), Begin::New);
    }

    #[test]
    fn keys_lapse_after_the_ttl() {
        let mut store = Store::new(DAY);
        assert_eq!(store.begin("k", [1; 32], 0), Begin::New);
        store.finish("k", answer(1));
        assert_eq!(store.begin("k", [2; 32], DAY - 1), Begin::Mismatch);
        assert_eq!(
            store.begin("k", [2; 32], DAY),
            Begin::New,
            "a lapsed key is new again"
        );
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn released_keys_are_processed_afresh_and_not_expired_early() {
        let mut store = Store::new(10);
        assert_eq!(store.begin("k", [1; 32], 0), Begin::New);
        store.release("k");
        assert!(store.is_empty());
        assert_eq!(store.begin("k", [1; 32], 5), Begin::New);
        store.finish("k", answer(3));
        // The first reservation's lapse at t=10 must not remove the second entry.
        assert_eq!(store.begin("k", [1; 32], 12), Begin::Replay(answer(3)));
        assert_eq!(store.begin("k", [1; 32], 15), Begin::New);
    }

    #[test]
    fn release_does_not_forget_a_finished_answer() {
        let mut store = Store::new(DAY);
        store.begin("k", [1; 32], 0);
        store.finish("k", answer(1));
        store.release("k");
        assert_eq!(store.begin("k", [1; 32], 1), Begin::Replay(answer(1)));
    }
}
