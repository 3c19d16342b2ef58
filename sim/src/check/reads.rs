//! P9 for client reads: `get`, `query` and `read_from` answer exactly what
//! the model's view (the validated visible state) says, and a cursor never
//! skips an event.

use shale_store::{Event, EventId, ReadError, Region, Walk, WalkEnd};

use crate::model::Model;

/// The reference answer to a query.
pub fn matches(region: &Region, event: &Event) -> bool {
    let entity = event.coordinate.entity();
    region.entity.as_deref().is_none_or(|e| entity == e)
        && region.entity_prefix.as_deref().is_none_or(|p| entity.starts_with(p))
        && region.scope.as_deref().is_none_or(|s| event.coordinate.scope() == s)
        && region.kind.as_deref().is_none_or(|k| *event.kind == *k)
        && region.global.as_ref().is_none_or(|r| r.contains(&event.global_seq))
        && region.entity_seq.as_ref().is_none_or(|r| r.contains(&event.entity_seq))
}

/// What differs between an event read and the model's, field by field.
fn difference(got: &Event, expected: &Event) -> String {
    let mut fields = Vec::new();
    let mut differs = |name: &str, a: String, b: String| {
        if a != b {
            fields.push(format!("{name} {a} (model: {b})"));
        }
    };
    differs("id", got.id.to_string(), expected.id.to_string());
    differs("coordinate", format!("{:?}", got.coordinate), format!("{:?}", expected.coordinate));
    differs("kind", got.kind.to_string(), expected.kind.to_string());
    differs("entity_seq", got.entity_seq.to_string(), expected.entity_seq.to_string());
    differs("causation", format!("{:?}", got.causation), format!("{:?}", expected.causation));
    differs("correlation", got.correlation.to_string(), expected.correlation.to_string());
    differs("timestamp", got.timestamp_ns.to_string(), expected.timestamp_ns.to_string());
    differs("payload", format!("{:?}", &*got.payload), format!("{:?}", &*expected.payload));
    differs("key_gen", got.key_gen.to_string(), expected.key_gen.to_string());
    differs("shredded", got.shredded.to_string(), expected.shredded.to_string());
    differs("key_lost", got.key_lost.to_string(), expected.key_lost.to_string());
    differs("hash", format!("{:02x?}", &got.hash[..4]), format!("{:02x?}", &expected.hash[..4]));
    format!(
        "event {} of {} (key generation {}): {}",
        got.global_seq,
        got.coordinate.entity(),
        got.key_gen,
        fields.join(", ")
    )
}

/// The first pair of `got` and `expected` that differ, described; or how
/// the lists differ in length.
fn first_difference<'a>(got: &[Event], expected: impl IntoIterator<Item = &'a Event>) -> String {
    let expected: Vec<&Event> = expected.into_iter().collect();
    let pairs = got.iter().zip(&expected);
    match pairs.clone().find(|(g, e)| g.global_seq == e.global_seq && *g != **e) {
        Some((g, e)) => difference(g, e),
        None => {
            let got: Vec<u64> = got.iter().map(|e| e.global_seq).collect();
            let expected: Vec<u64> = expected.iter().map(|e| e.global_seq).collect();
            format!("returned {got:?}, the model has {expected:?}")
        }
    }
}

pub fn check_get(model: &Model, id: EventId, got: Result<Option<Event>, ReadError>) -> Result<(), String> {
    let expected = model.view.get(id.global_seq().wrapping_sub(1) as usize).filter(|e| e.id == id);
    let got = match (got, expected) {
        (Err(ReadError::Shredded { id: shredded, .. }), Some(e)) if e.shredded && shredded == id => return Ok(()),
        (Err(ReadError::Integrity { id: lost, .. }), Some(e)) if e.key_lost && lost == id => return Ok(()),
        (Err(e), _) => return Err(format!("get({id}) failed: {e}")),
        (Ok(Some(e)), _) if e.shredded => {
            return Err(format!("get({id}) returned a shredded event instead of Shredded"))
        }
        (Ok(got), _) => got,
    };
    if got.as_ref() != expected {
        return Err(format!("get({id}) {}", first_difference(got.as_slice(), expected)));
    }
    Ok(())
}

pub fn check_query(model: &Model, region: &Region, got: &[Event]) -> Result<(), String> {
    let expected: Vec<&Event> = model.view.iter().filter(|e| matches(region, e)).collect();
    if got.len() != expected.len() || got.iter().zip(&expected).any(|(g, e)| g != *e) {
        return Err(format!("query {region:?}: {}", first_difference(got, expected)));
    }
    Ok(())
}

pub fn check_read_from(model: &Model, from: u64, limit: usize, got: &[Event]) -> Result<(), String> {
    let start = (from.max(1) - 1) as usize;
    let expected = model.view.get(start..).map_or(&[][..], |rest| &rest[..rest.len().min(limit)]);
    if got != expected {
        return Err(format!("read_from({from}, {limit}): {}", first_difference(got, expected)));
    }
    Ok(())
}

/// The reference walk up from `id`: each event's cause in turn.
fn causes_in_view(model: &Model, id: EventId, limit: usize) -> (Vec<u64>, WalkEnd) {
    let mut out = Vec::new();
    let mut at = model.view.get(id.global_seq().wrapping_sub(1) as usize);
    while let Some(cause) = at.and_then(|e| e.causation) {
        if out.len() == limit {
            return (out, WalkEnd::Limit);
        }
        out.push(cause.global_seq());
        at = model.view.get(cause.global_seq().wrapping_sub(1) as usize);
    }
    (out, WalkEnd::Root)
}

/// The reference walk down from `id`, breadth first, found by scanning.
fn effects_in_view(model: &Model, id: EventId, depth_max: u32, count_max: usize) -> (Vec<u64>, WalkEnd) {
    let mut out = Vec::new();
    let mut end = WalkEnd::Leaves;
    let mut frontier = std::collections::VecDeque::from([(id.global_seq(), 0u32)]);
    while let Some((at, depth)) = frontier.pop_front() {
        let effects: Vec<u64> = model
            .view
            .iter()
            .filter(|e| e.causation.map(|c| c.global_seq()) == Some(at))
            .map(|e| e.global_seq)
            .collect();
        if effects.is_empty() {
            continue;
        }
        if depth == depth_max {
            end = WalkEnd::Limit;
            continue;
        }
        for effect in effects {
            if out.len() == count_max {
                return (out, WalkEnd::Limit);
            }
            out.push(effect);
            frontier.push_back((effect, depth + 1));
        }
    }
    (out, end)
}

/// The events of correlation `id` are every visible event whose
/// correlation it is (its root, if it is an event of its own correlation,
/// among them), in commit order, at most `WALK_COUNT_MAX`.
pub fn check_correlated(model: &Model, id: EventId, got: Result<Vec<Event>, ReadError>) -> Result<(), String> {
    let got = got.map_err(|e| format!("correlated({id}) failed: {e}"))?;
    let expected: Vec<&Event> = model.view.iter().filter(|e| e.correlation == id).take(WALK_COUNT_MAX).collect();
    if got.len() != expected.len() || got.iter().zip(&expected).any(|(g, e)| g != *e) {
        let found: Vec<u64> = got.iter().map(|e| e.global_seq).collect();
        let expected: Vec<u64> = expected.iter().map(|e| e.global_seq).collect();
        return Err(format!("correlated({id}) listed {found:?}; the model has {expected:?}"));
    }
    Ok(())
}

pub const WALK_DEPTH_MAX: u32 = 6;
pub const WALK_COUNT_MAX: usize = 40;

pub fn check_causes(model: &Model, id: EventId, got: Result<Option<Walk>, ReadError>) -> Result<(), String> {
    let walk = got.map_err(|e| format!("causes({id}) failed: {e}"))?.ok_or(format!("causes({id}): no such event"))?;
    let found: Vec<u64> = walk.events.iter().map(|e| e.global_seq).collect();
    let expected = causes_in_view(model, id, WALK_COUNT_MAX);
    if (found.clone(), walk.end) != expected {
        return Err(format!("causes({id}) walked {found:?} ({:?}); the model has {expected:?}", walk.end));
    }
    Ok(())
}

pub fn check_effects(model: &Model, id: EventId, got: Result<Option<Walk>, ReadError>) -> Result<(), String> {
    let walk = got.map_err(|e| format!("effects({id}) failed: {e}"))?.ok_or(format!("effects({id}): no such event"))?;
    let found: Vec<u64> = walk.events.iter().map(|e| e.global_seq).collect();
    let expected = effects_in_view(model, id, WALK_DEPTH_MAX, WALK_COUNT_MAX);
    if (found.clone(), walk.end) != expected {
        return Err(format!("effects({id}) walked {found:?} ({:?}); the model has {expected:?}", walk.end));
    }
    Ok(())
}
