//! What the simulated clients do each turn, and how their answers are
//! checked and recorded in the model.

use super::*;
use crate::check::refusals::{check_answer, Flush, Predicted};

/// A client gives up on a batch after this many retries in a row, as a
/// real client with a retry budget does: with the disk full for good,
/// retrying without end keeps a run from ever finishing its operations.
const RETRIES_MAX: u32 = 16;

impl Sim {
    pub(super) fn client_acts(&mut self, c: u32) -> Result<(), Stop> {
        let client = &self.clients[c as usize];
        if client.waiting.is_some() {
            return Ok(());
        }
        if self.core.is_none() {
            // The store is down; come back later.
            let at = self.time.now() + self.scenario.run.restart_delay_ns;
            self.schedule(at, Event::Client(c));
            return Ok(());
        }
        if let Some(uid) = client.retry {
            self.clients[c as usize].retry = None;
            self.clients[c as usize].retries += 1;
            self.model.set_fate(uid, Fate::InFlight);
            self.note(format!("client {c} retries batch {uid}"));
            self.send(c, uid);
            return Ok(());
        }
        if client.ops_left == 0 {
            return Ok(());
        }
        let Some(core) = &self.core else { unreachable!("checked above") };
        let reader = core.reader();
        let cursor = client.cursor;
        self.clients[c as usize].ops_left -= 1;
        self.clients[c as usize].retries = 0;
        let op = self.workload.next(&mut self.model, reader.store_tag(), cursor);
        let checked = match op {
            Op::Write(uid) => {
                let len = self.model.batch(uid).items.len();
                self.note(format!("client {c} sends batch {uid} of {len}"));
                self.send(c, uid);
                return Ok(());
            }
            Op::Shred(entity) => {
                self.note(format!("client {c} shreds {entity}"));
                self.enqueue(c, Req::Shred((c, entity)), None);
                return Ok(());
            }
            Op::Causes(id) => {
                self.note(format!("client {c} causes of {id}"));
                let Some(got) = self.read_ok(answer(reader.causes(id, reads::WALK_COUNT_MAX)), false)? else {
                    return self.after_failed_read(c);
                };
                reads::check_causes(&self.model, id, got)
            }
            Op::Effects(id) => {
                self.note(format!("client {c} effects of {id}"));
                let got = answer(reader.effects(id, reads::WALK_DEPTH_MAX, reads::WALK_COUNT_MAX));
                let Some(got) = self.read_ok(got, false)? else { return self.after_failed_read(c) };
                reads::check_effects(&self.model, id, got)
            }
            Op::Correlated(id) => {
                self.note(format!("client {c} correlated {id}"));
                let Some(got) = self.read_ok(answer(reader.correlated(id, reads::WALK_COUNT_MAX)), false)? else {
                    return self.after_failed_read(c);
                };
                reads::check_correlated(&self.model, id, got)
            }
            Op::Get(id) => {
                self.note(format!("client {c} get {id}"));
                let Some(got) = self.read_ok(answer(reader.get(id)), false)? else { return self.after_failed_read(c) };
                reads::check_get(&self.model, id, got)
            }
            Op::Query(region) => {
                self.note(format!("client {c} query {region:?}"));
                let Some(got) = self.read_ok(answer(reader.query(&region)), false)? else {
                    return self.after_failed_read(c);
                };
                match got {
                    Ok(got) => reads::check_query(&self.model, &region, &got),
                    Err(e) => Err(format!("query failed: {e}")),
                }
            }
            Op::ReadFrom { from, limit } => {
                self.note(format!("client {c} read_from {from} limit {limit}"));
                let Some(got) = self.read_ok(answer(reader.read_from(from, limit)), false)? else {
                    return self.after_failed_read(c);
                };
                match got {
                    Ok(got) => {
                        let checked = reads::check_read_from(&self.model, from, limit, &got);
                        if let Some(last) = got.last() {
                            self.clients[c as usize].cursor = last.global_seq + 1;
                        }
                        checked
                    }
                    Err(e) => Err(format!("read_from failed: {e}")),
                }
            }
        };
        checked.map_err(|m| self.violation(Promise::P9ModelEquivalence, m))?;
        let at = self.time.now() + self.sched_rng.below(self.scenario.run.think_ns_max.max(1));
        self.schedule(at, Event::Client(c));
        Ok(())
    }

    /// A client whose read failed for a reason the run excuses moves on:
    /// after the restart if the power went out, else after its think time.
    fn after_failed_read(&mut self, c: u32) -> Result<(), Stop> {
        let wait = match self.core {
            None => self.scenario.run.restart_delay_ns,
            Some(_) => self.sched_rng.below(self.scenario.run.think_ns_max.max(1)),
        };
        let at = self.time.now() + wait;
        self.schedule(at, Event::Client(c));
        Ok(())
    }

    pub(super) fn send(&mut self, c: u32, uid: u64) {
        self.enqueue(c, Req::Append((c, uid)), Some(uid));
    }

    pub(super) fn enqueue(&mut self, c: u32, req: Req, uid: Option<u64>) {
        let client = &mut self.clients[c as usize];
        client.waiting = Some(uid.unwrap_or(0));
        client.sent_at = self.time.now();
        self.inbox.push_back(req);
        if !self.writer_scheduled && self.core.is_some() {
            self.writer_scheduled = true;
            let at = self.time.now();
            self.schedule(at, Event::Writer);
        }
    }

    /// Delivers one commit result to its client, after checking it is the
    /// fate the model predicts (given what `flush` accepted before it), and
    /// records it in the model.
    pub(super) fn answer(
        &mut self,
        c: u32,
        uid: u64,
        result: Result<Vec<Receipt>, AppendError>,
        flush: &mut Flush,
    ) -> Result<(), Stop> {
        let batch = self.model.batch(uid).clone();
        let predicted = match &result {
            Err(AppendError::ReadFailed { error, .. }) => {
                // A gate's read failed: the disk must excuse it, and the
                // batch is not in the flush, whatever the model predicted.
                let mut earlier = self.commit_damage.clone();
                earlier.extend(self.disk.damage_since(self.commit_damage_mark));
                match crate::excuse::read_trouble(&self.disk, &self.map, error, &earlier) {
                    Some(ReadTrouble::Damaged { inode, range, .. }) => {
                        self.stats.noticed_at(&self.disk, &[(inode, range)])
                    }
                    _ => return Err(self.read_violation(error)),
                }
                flush.predict(&self.model, &batch)
            }
            _ => flush.plan(&self.model, &batch),
        };
        if let Err(message) = check_answer(&predicted, &batch, &result) {
            let promise = match (&predicted, &result) {
                (Predicted::Denied { .. }, Ok(_)) => Promise::P7GatesHold,
                _ => Promise::P9ModelEquivalence,
            };
            return Err(self.violation(promise, message));
        }
        if let Predicted::Exploded { .. } = predicted {
            self.exercised("gate panicked");
        }
        let has_key = batch.key.is_some();
        let was_acked = matches!(batch.fate, Fate::Acked(_));
        let retry = match &result {
            Ok(receipts) => {
                let globals: Vec<u64> = receipts.iter().map(|r| r.global_seq).collect();
                let contiguous = globals.windows(2).all(|w| w[1] == w[0] + 1);
                if globals.len() != batch.items.len() || !contiguous {
                    return Err(
                        self.violation(Promise::P9ModelEquivalence, format!("batch {uid}: receipts {globals:?}"))
                    );
                }
                if let Fate::Acked(earlier) = &batch.fate {
                    if *earlier != globals {
                        return Err(self.violation(
                            Promise::P9ModelEquivalence,
                            format!("retry of batch {uid} got receipts {globals:?}, first ack was {earlier:?}"),
                        ));
                    }
                }
                self.note(format!("client {c} batch {uid} acked at {globals:?}"));
                let kind = if batch.items.len() == 1 { Request::Append } else { Request::Batch };
                self.stats.latency(kind, self.time.now() - self.clients[c as usize].sent_at);
                self.model.set_fate(uid, Fate::Acked(globals));
                false
            }
            Err(AppendError::Unavailable(e)) => {
                self.note(format!("client {c} batch {uid} unavailable: {e}"));
                self.noticed_at_runtime();
                if !was_acked {
                    self.model.set_fate(uid, Fate::Refused);
                }
                has_key
            }
            Err(AppendError::OutcomeUnknown(e)) => {
                self.note(format!("client {c} batch {uid} outcome unknown: {e}"));
                self.noticed_at_runtime();
                if !was_acked {
                    self.model.set_fate(uid, Fate::Maybe);
                }
                has_key
            }
            Err(refusal) => {
                self.note(format!("client {c} batch {uid} refused, as predicted: {refusal}"));
                self.model.set_fate(uid, Fate::Refused);
                false
            }
        };
        self.clients[c as usize].waiting = None;
        if retry && self.retries_again(c) {
            self.clients[c as usize].retry = Some(uid);
        }
        let at = self.time.now() + self.sched_rng.below(self.scenario.run.think_ns_max.max(1));
        self.schedule(at, Event::Client(c));
        Ok(())
    }

    /// Whether client `c` sends its failed batch again: within its retry
    /// budget, as the workload draws.
    fn retries_again(&mut self, c: u32) -> bool {
        self.clients[c as usize].retries < RETRIES_MAX && self.workload.retries()
    }

    /// A client whose request died with the process.
    pub(super) fn unanswered(&mut self, c: u32, uid: u64) {
        let has_key = self.model.batch(uid).key.is_some();
        self.clients[c as usize].waiting = None;
        if has_key && self.retries_again(c) {
            self.clients[c as usize].retry = Some(uid);
        }
        let at = self.time.now()
            + self.scenario.run.restart_delay_ns
            + self.sched_rng.below(self.scenario.run.think_ns_max.max(1));
        self.schedule(at, Event::Client(c));
    }
}

/// A read whose typed refusals are answers to check against the model
/// (`Ok(Err(_))`), apart from failures of the disk under it (`Err(_)`).
fn answer<T>(read: Result<T, ReadError>) -> Result<Result<T, ReadError>, ReadError> {
    match read {
        Err(e @ (ReadError::Io { .. } | ReadError::Damaged { .. })) => Err(e),
        other => Ok(other),
    }
}
