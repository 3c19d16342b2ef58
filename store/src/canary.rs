//! Planted bugs, compiled only with the `canaries` feature and switched on
//! one at a time through `Options::canary`. The simulator must catch each
//! one: a checker no canary can trip is a checker not known to work.

/// Which planted bug is active.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Canary {
    #[default]
    None,
    /// The writer acknowledges a flush without syncing it.
    AckBeforeFsync,
    /// After a failed write or fsync, the writer appends the next flush
    /// behind the bytes it could not sync, in the same segment.
    WriteBehindFailedSync,
    /// Recovery keeps the events of a group whose commit record is missing.
    KeepUncommittedGroup,
    /// A commit's new keys are published after its frames, with some later
    /// commit, instead of before them.
    KeysetAfterFrames,
    /// A shred is acknowledged before the keyset without the key is
    /// published (which happens with some later commit).
    ShredAckBeforeKeyset,
    /// Gates are checked against the committed state only, blind to what
    /// the same commit accepted before (a stale snapshot).
    StaleGateSnapshot,
    /// A named cause is recorded as another event.
    MisresolvedCause,
    /// After a failed write or fsync the writer never starts a new segment:
    /// every later commit fails.
    PoisonedWriter,
    /// Recovery panics where it should cut a torn tail.
    PanicOnTornTail,
    /// Each event's hash is chained onto the genesis link instead of its
    /// entity's previous hash.
    UnchainedHash,
    /// A query leaves out the last event that matches.
    QueryDropsLast,
    /// Recovery cuts a torn or damaged tail without listing the cut in its
    /// report.
    SilentCut,
    /// Recovery reads every segment to its end, past the end its successor
    /// records (the bytes of a flush whose fsync failed), and skips the
    /// groups of the next segment whose ids it has already applied, as if
    /// they were duplicates.
    ReplayPastRecordedEnd,
    /// Open keeps a count in process-wide state and on every other open
    /// looks for one file more: the same seed takes a different path when
    /// it runs again in the same process (nondeterminism).
    HiddenState,
    /// Open from the index checkpoint loses its idempotency table (a field
    /// the image left out).
    CheckpointForgetsIdempotency,
}

impl Canary {
    pub const ALL: [Canary; 15] = [
        Canary::AckBeforeFsync,
        Canary::WriteBehindFailedSync,
        Canary::KeepUncommittedGroup,
        Canary::KeysetAfterFrames,
        Canary::ShredAckBeforeKeyset,
        Canary::StaleGateSnapshot,
        Canary::MisresolvedCause,
        Canary::PoisonedWriter,
        Canary::PanicOnTornTail,
        Canary::UnchainedHash,
        Canary::QueryDropsLast,
        Canary::SilentCut,
        Canary::ReplayPastRecordedEnd,
        Canary::HiddenState,
        Canary::CheckpointForgetsIdempotency,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Canary::None => "none",
            Canary::AckBeforeFsync => "ack_before_fsync",
            Canary::WriteBehindFailedSync => "write_behind_failed_sync",
            Canary::KeepUncommittedGroup => "keep_uncommitted_group",
            Canary::KeysetAfterFrames => "keyset_after_frames",
            Canary::ShredAckBeforeKeyset => "shred_ack_before_keyset",
            Canary::StaleGateSnapshot => "stale_gate_snapshot",
            Canary::MisresolvedCause => "misresolved_cause",
            Canary::PoisonedWriter => "poisoned_writer",
            Canary::PanicOnTornTail => "panic_on_torn_tail",
            Canary::UnchainedHash => "unchained_hash",
            Canary::QueryDropsLast => "query_drops_last",
            Canary::SilentCut => "silent_cut",
            Canary::ReplayPastRecordedEnd => "replay_past_recorded_end",
            Canary::HiddenState => "hidden_state",
            Canary::CheckpointForgetsIdempotency => "checkpoint_forgets_idempotency",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Canary::None].into_iter().chain(Canary::ALL).find(|c| c.name() == name)
    }
}
