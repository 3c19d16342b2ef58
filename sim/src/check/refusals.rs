//! P9 for the writer's answers: every batch's fate is the one the reference
//! model predicts, refusals included, down to which item, which version,
//! which gate and which key.
//!
//! The prediction follows the store's documented rules against the model's
//! view (the committed state before the flush) plus what the same flush
//! accepted before the batch: an idempotency key already committed answers
//! with the original receipts (same batch) or a conflict (another batch);
//! then item by item, the first to fail decides: an expected version that
//! is not the entity's version, a cause that names no visible event, the
//! balance gate's denial of a withdrawal it cannot cover, the panicking
//! gate's failure on an "explode" item. The store plans a whole flush before
//! writing it, so every batch predicted to commit counts for the ones after
//! it in the flush, whatever the write then does. A batch predicted to
//! commit may still fail for the disk's reasons (unavailable, outcome
//! unknown); a predicted refusal may not.

use std::collections::BTreeMap;

use shale_store::{AppendError, InvalidInput, Receipt};

use crate::gates::{BALANCE_GATE, EXPLODING_GATE};
use crate::model::{Invalid, Model, ModelBatch, ModelCause, ModelItem, PAYLOAD_TAG_LEN};

/// What the model says the store must answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Predicted {
    Commit,
    /// The original receipts of the batch already committed with this key,
    /// from this global sequence.
    Dedup {
        first_global: u64,
    },
    VersionConflict {
        item: usize,
        expected: u64,
        actual: u64,
    },
    UnknownCause {
        item: usize,
    },
    Denied {
        item: usize,
    },
    Exploded {
        item: usize,
    },
    IdempotencyConflict,
    /// Refused as invalid, the way the batch was made so.
    Invalid(Invalid),
}

/// What the flush planned so far, on top of the model's view.
#[derive(Debug)]
pub struct Flush {
    versions: BTreeMap<String, u64>,
    /// Balances are kept only in gated runs, where amounts are small; an
    /// ungated run's payload bytes are arbitrary and mean no amount.
    gated: bool,
    balances: BTreeMap<String, i64>,
    /// Keys planned in this flush: (uid, first global sequence).
    keys: BTreeMap<String, (u64, u64)>,
    /// The global sequence the next planned batch starts at.
    next_global: u64,
}

/// The balance change of an item in a gated run (the amount follows the
/// payload's tag).
fn delta(item: &ModelItem) -> i64 {
    let amount = item.payload.get(PAYLOAD_TAG_LEN..PAYLOAD_TAG_LEN + 8).and_then(|b| b.try_into().ok());
    let amount = amount.map_or(0, i64::from_le_bytes);
    match item.kind.as_str() {
        "deposited" => amount,
        "withdrawn" => -amount,
        _ => 0,
    }
}

impl Flush {
    /// A flush starting on the model's view.
    pub fn new(model: &Model) -> Self {
        let next_global = model.view.len() as u64 + 1;
        Self {
            versions: BTreeMap::new(),
            gated: model.gated,
            balances: BTreeMap::new(),
            keys: BTreeMap::new(),
            next_global,
        }
    }

    fn version(&self, model: &Model, entity: &str) -> u64 {
        model.version(entity) + self.versions.get(entity).copied().unwrap_or(0)
    }

    fn balance(&self, model: &Model, entity: &str) -> i64 {
        model.balances.get(entity).copied().unwrap_or(0) + self.balances.get(entity).copied().unwrap_or(0)
    }

    /// The fate the model predicts for `batch`, next in this flush; a batch
    /// predicted to commit is planned in.
    pub fn plan(&mut self, model: &Model, batch: &ModelBatch) -> Predicted {
        let predicted = self.predict(model, batch);
        if predicted == Predicted::Commit {
            self.accept(batch);
        }
        predicted
    }

    /// What the model predicts for `batch`, without taking it into the
    /// flush (the store refused it whatever the prediction).
    pub fn predict(&self, model: &Model, batch: &ModelBatch) -> Predicted {
        if let Some(invalid) = batch.invalid {
            return Predicted::Invalid(invalid);
        }
        if let Some(key) = &batch.key {
            let committed = model.committed_key(key).or_else(|| self.keys.get(key).copied());
            match committed {
                Some((uid, first_global)) if uid == batch.uid => return Predicted::Dedup { first_global },
                Some(_) => return Predicted::IdempotencyConflict,
                None => {}
            }
        }
        let mut versions: BTreeMap<&str, u64> = BTreeMap::new();
        let mut balances: BTreeMap<&str, i64> = BTreeMap::new();
        for (i, item) in batch.items.iter().enumerate() {
            let entity = item.entity.as_str();
            let version = *versions.entry(entity).or_insert_with(|| self.version(model, entity));
            if let Some(expected) = item.expected_version.filter(|&e| e != version) {
                return Predicted::VersionConflict { item: i, expected, actual: version };
            }
            if let Some(ModelCause::Event { id, .. }) = &item.cause {
                let here = model.view.get(id.global_seq().wrapping_sub(1) as usize).is_some_and(|e| e.id == *id);
                if !here {
                    return Predicted::UnknownCause { item: i };
                }
            }
            if model.gated {
                let balance = *balances.entry(entity).or_insert_with(|| self.balance(model, entity));
                if balance + delta(item) < 0 {
                    return Predicted::Denied { item: i };
                }
                if item.kind == "explode" {
                    return Predicted::Exploded { item: i };
                }
                balances.insert(entity, balance + delta(item));
            }
            versions.insert(entity, version + 1);
        }
        Predicted::Commit
    }

    fn accept(&mut self, batch: &ModelBatch) {
        for item in &batch.items {
            *self.versions.entry(item.entity.clone()).or_default() += 1;
            if self.gated {
                *self.balances.entry(item.entity.clone()).or_default() += delta(item);
            }
        }
        if let Some(key) = &batch.key {
            self.keys.insert(key.clone(), (batch.uid, self.next_global));
        }
        self.next_global += batch.items.len() as u64;
    }
}

/// Whether the store's `answer` is the `predicted` one (I/O failures are
/// allowed where a commit was predicted).
pub fn check_answer(
    predicted: &Predicted,
    batch: &ModelBatch,
    answer: &Result<Vec<Receipt>, AppendError>,
) -> Result<(), String> {
    use Predicted as P;
    let ok = match (predicted, answer) {
        (P::Commit | P::Dedup { .. }, Err(AppendError::Unavailable(_) | AppendError::OutcomeUnknown(_))) => true,
        // A gate's read failed on item `i` (whether the disk excuses it is
        // the caller's to check): every check before that gate passed, so
        // the batch was to commit or be refused at item `i` or later.
        (P::Commit, Err(AppendError::ReadFailed { .. })) => true,
        (
            P::VersionConflict { item, .. } | P::UnknownCause { item } | P::Denied { item } | P::Exploded { item },
            Err(AppendError::ReadFailed { item: i, .. }),
        ) => item >= i,
        (P::Commit, Ok(receipts)) => receipts.len() == batch.items.len(),
        (P::Dedup { first_global }, Ok(receipts)) => receipts.first().map(|r| r.global_seq) == Some(*first_global),
        (
            P::VersionConflict { item, expected, actual },
            Err(AppendError::VersionConflict { item: i, entity, expected: e, actual: a }),
        ) => (item, expected, actual) == (i, e, a) && batch.items.get(*item).is_some_and(|x| x.entity == *entity),
        (
            P::UnknownCause { item },
            Err(AppendError::Invalid { item: Some(i), error: InvalidInput::UnknownCause { cause } }),
        ) => {
            let named = batch.items.get(*item).and_then(|x| match &x.cause {
                Some(ModelCause::Event { id, .. }) => Some(*id),
                _ => None,
            });
            item == i && named == Some(*cause)
        }
        (P::Denied { item }, Err(AppendError::Denied { gate, item: i, .. })) => item == i && gate == BALANCE_GATE,
        (P::Exploded { item }, Err(AppendError::GateFailed { gate, item: i, .. })) => {
            item == i && gate == EXPLODING_GATE
        }
        (P::IdempotencyConflict, Err(AppendError::IdempotencyConflict { key })) => batch.key.as_ref() == Some(key),
        (P::Invalid(invalid), Err(AppendError::Invalid { item, error })) => match (invalid, item, error) {
            (Invalid::EmptyBatch, None, InvalidInput::EmptyBatch) => true,
            (Invalid::Key, None, InvalidInput::ControlCharacter { field }) => *field == "idempotency key",
            (Invalid::EmptyKind(i), Some(at), InvalidInput::Empty { field }) => i == at && *field == "kind",
            (Invalid::CauseNotEarlier(i), Some(at), InvalidInput::CauseNotEarlier { item, cause }) => {
                i == at && (item, cause) == (i, i)
            }
            _ => false,
        },
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let answered = match answer {
        Ok(receipts) => format!("receipts from {:?}", receipts.first().map(|r| r.global_seq)),
        Err(e) => e.to_string(),
    };
    Err(format!("batch {}: the model predicts {predicted:?}, the store answered {answered}", batch.uid))
}
