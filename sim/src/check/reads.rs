//! P9 for client reads: `get`, `query` and `read_from` answer exactly what
//! the model's view (the validated visible state) says, and a cursor never
//! skips an event.

use shale_store::{Event, EventId, ReadError, Region};

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

pub fn check_get(model: &Model, id: EventId, got: Result<Option<Event>, ReadError>) -> Result<(), String> {
    let expected = model.view.get(id.global_seq().wrapping_sub(1) as usize).filter(|e| e.id == id);
    let got = match (got, expected) {
        (Err(ReadError::Shredded { id: shredded, .. }), Some(e)) if e.shredded && shredded == id => return Ok(()),
        (Err(e), _) => return Err(format!("get({id}) failed: {e}")),
        (Ok(Some(e)), _) if e.shredded => {
            return Err(format!("get({id}) returned a shredded event instead of Shredded"))
        }
        (Ok(got), _) => got,
    };
    let got = got.as_ref();
    if got != expected {
        return Err(format!(
            "get({id}) returned {:?}, the model has {:?}",
            got.map(|e| e.global_seq),
            expected.map(|e| e.global_seq)
        ));
    }
    Ok(())
}

pub fn check_query(model: &Model, region: &Region, got: &[Event]) -> Result<(), String> {
    let expected: Vec<&Event> = model.view.iter().filter(|e| matches(region, e)).collect();
    if got.len() != expected.len() || got.iter().zip(&expected).any(|(g, e)| g != *e) {
        let got: Vec<u64> = got.iter().map(|e| e.global_seq).collect();
        let expected: Vec<u64> = expected.iter().map(|e| e.global_seq).collect();
        return Err(format!("query {region:?} returned {got:?}, the model has {expected:?}"));
    }
    Ok(())
}

pub fn check_read_from(model: &Model, from: u64, limit: usize, got: &[Event]) -> Result<(), String> {
    let start = (from.max(1) - 1) as usize;
    let expected = model.view.get(start..).map_or(&[][..], |rest| &rest[..rest.len().min(limit)]);
    if got != expected {
        return Err(format!(
            "read_from({from}, {limit}) returned {} events from {:?}, the model has {} from {:?}",
            got.len(),
            got.first().map(|e| e.global_seq),
            expected.len(),
            expected.first().map(|e| e.global_seq)
        ));
    }
    Ok(())
}
