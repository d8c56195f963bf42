//! Who holds the growth: the holder probe's findings, and how a run is extended on them.
//!
//! A bounded cache filling during the run grows exactly like a leak until it is full: with a
//! new key per iteration, a cache of 500 entries fills over 500 iterations, longer than a
//! default run. So when a look would call growth a leak, the worker asks `holders.py` which
//! containers hold the objects that survived since setup and whether each has a readable bound
//! (`lru_cache(maxsize=N)`, `deque(maxlen=N)`, a `capacity`/`maxsize` attribute, a module
//! constant its module compares the container's `len()` with). When bounded holders hold most of
//! it, the worker keeps running until they are full ([`Outcome::Saturated`]), within a budget,
//! and the verdict is drawn from the samples after that point only, with the holders' own size
//! taken out (a cache trimmed in bulk swings in a sawtooth that is not growth). Growth held by
//! an unbounded container is decided at the look as before ([`Outcome::Unbounded`]).
//!
//! No leak can hide behind a bound: after saturation the ordinary rule judges every gated
//! metric, so memory that keeps growing beside the cache, inside its entries, or in a holder
//! that advertises a capacity and never evicts is still growth.

use serde::{Deserialize, Serialize};

use crate::units::format_quantity;

/// How a holder's capacity was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoundKind {
    /// `functools.lru_cache(maxsize=N)`.
    LruCache,
    /// `collections.deque(maxlen=N)`.
    Maxlen,
    /// An integer attribute such as `capacity` or `maxsize` on the holder or its owner.
    Attribute,
    /// A module's integer constant that its code compares the container's `len()` with.
    ModuleConstant,
}

/// A holder's capacity, as the probe read it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bound {
    /// Where it was read.
    pub kind: BoundKind,
    /// Entries it holds at most.
    pub capacity: u64,
    /// The attribute or constant read (`capacity`, `re._MAXCACHE`), when not an `lru_cache` or
    /// `deque`.
    #[serde(default)]
    pub attribute: Option<String>,
}

/// One container that holds objects made since setup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    /// How a user names it: `sqlalchemy.engine.base.Engine._compiled_cache`, `re._cache`.
    pub name: String,
    /// Its type (or the type of the object that bounds it).
    pub type_name: String,
    /// Entries at the probe, when it has a length.
    pub size: Option<u64>,
    /// Its capacity, when one could be read.
    pub bound: Option<Bound>,
    /// Share of the sampled survivors it holds, 0 to 1.
    pub share: f64,
    /// Found by listing every `lru_cache` and namespace-held container rather than by following
    /// a survivor (growth the collector does not track leaves none); the worker keeps only those
    /// whose size grows.
    #[serde(default)]
    pub scanned: bool,
    /// Entries added per measured iteration while the worker measured how fast holders fill.
    #[serde(default)]
    pub growth: Option<f64>,
}

/// What one probe found: `holders.probe()`'s JSON, decoded strictly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// gc-tracked objects alive that were made since setup.
    pub survivors: u64,
    /// How many of them were followed to their holders.
    pub sampled: u64,
    /// Sampled survivors whose holder was not found within the climb.
    pub unattributed: u64,
    /// Holders, the largest share first.
    pub holders: Vec<Holder>,
}

impl Probe {
    /// Share of the sampled survivors that bounded holders hold.
    pub fn bounded_share(&self) -> f64 {
        self.holders
            .iter()
            .filter(|h| h.bound.is_some())
            .map(|h| h.share)
            .sum()
    }
}

/// What the worker did after a probe; the verdict is replayed from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Unbounded holders (or no holder found) keep most of the growth, or an unbounded holder
    /// kept growing: decided at the look, as without the probe.
    Unbounded,
    /// The bounded holders would be full only after `fill_at` measured iterations, beyond the
    /// budget of `budget` iterations or of time: decided at the look, as without the probe.
    BeyondBudget {
        /// Projected measured iteration at which the bounded holders are full.
        fill_at: u64,
        /// Most measured iterations the run may make.
        budget: u64,
        /// The scenario's `timeout` when time, not iterations, was the limit: at the pace so
        /// far, filling and judging after would take more than half of it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_secs: Option<f64>,
    },
    /// The bounded holders were full at measured iteration `saturated_at`; the run went on to
    /// `end` and is judged on the samples in between.
    Saturated {
        /// Measured iteration at which every major bounded holder was full (or trimmed).
        saturated_at: u64,
        /// Measured iterations at the end of the extended run.
        end: u64,
    },
    /// The bounded holders were not full by `end`, the budget's end: judged on every sample.
    NotFilled {
        /// Measured iterations at the end of the extended run.
        end: u64,
    },
}

/// The probe, what came of it, and the sizes of the bounded holders during the extension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HolderReport {
    /// Index (from 0) of the look whose samples would have called growth a leak.
    pub look: usize,
    /// Measured iterations at the probe.
    pub probed_at: u64,
    /// What the probe found.
    pub probe: Probe,
    /// What the worker did with it.
    pub outcome: Outcome,
    /// `(iteration, entries)`: the major bounded holders' total size at every measured sample
    /// after the probe (warmup included in the iteration number, as samples count).
    #[serde(default)]
    pub sizes: Vec<(u64, f64)>,
    /// Why the probe found nothing, when its own code failed (the verdict is then as without it).
    #[serde(default)]
    pub note: Option<String>,
    /// Seconds the probe itself took (the search for holders, not the iterations after it).
    #[serde(default)]
    pub probe_secs: f64,
}

impl HolderReport {
    /// The bounded holders that hold a real share of the growth: a share of the sampled
    /// survivors of at least [`MAJOR_SHARE`], or a size that grew while the worker measured how
    /// fast holders fill.
    pub fn major_bounded(&self) -> impl Iterator<Item = &Holder> {
        self.probe.holders.iter().filter(|h| {
            h.bound.is_some()
                && (h.share >= MAJOR_SHARE || h.growth.is_some_and(|g| g >= GROWING_MIN_RATE))
        })
    }

    /// Who held the growth, in words: the main bounded holders joined with "and" when the run
    /// waited for them ("sqlalchemy.engine.base.Engine._compiled_cache (LRUCache, capacity
    /// 500)"); else the unbounded holder that grew fastest, or the one holding most survivors.
    pub fn describe(&self) -> Option<String> {
        let bounded: Vec<String> = self.major_bounded().map(describe_holder).collect();
        if !bounded.is_empty() && !matches!(self.outcome, Outcome::Unbounded) {
            return Some(match bounded.len() {
                1 | 2 => bounded.join(" and "),
                n => format!(
                    "{}, {} and {} more bounded holders",
                    bounded[0],
                    bounded[1],
                    n - 2
                ),
            });
        }
        let unbounded = || self.probe.holders.iter().filter(|h| h.bound.is_none());
        unbounded()
            .filter(|h| h.growth.is_some_and(|g| g > 0.0))
            .max_by(|a, b| {
                a.growth
                    .partial_cmp(&b.growth)
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .or_else(|| {
                unbounded()
                    .find(|h| !h.scanned && h.share >= EXTEND_SHARE && self.probe.sampled >= 8)
            })
            .map(describe_holder)
    }
}

/// Growth a holder must show while the worker measures how fast holders fill to count as
/// growing: at least [`GROWING_MIN_ENTRIES`] entries, and a tenth of an entry per iteration (the
/// `alloc_blocks` tolerance). An unbounded holder that grows so holds the leak; a bounded one
/// must be full before the run is judged.
pub const GROWING_MIN_ENTRIES: f64 = 3.0;
/// See [`GROWING_MIN_ENTRIES`].
pub const GROWING_MIN_RATE: f64 = 0.1;

/// A holder's share below this is incidental (a lazily filled module cache): it does not have to
/// be full before the run is judged.
pub const MAJOR_SHARE: f64 = 0.1;

/// Bounded holders must hold at least this share of the sampled survivors for the run to be
/// extended; otherwise what grew is mostly elsewhere and is decided as before.
pub const EXTEND_SHARE: f64 = 0.5;

/// Most measured iterations an extended run may make, in multiples of `iterations`, when the
/// scenario did not set `max_iterations` (which then wins): a cache of up to ~23 × `iterations`
/// entries filled one per iteration is decided.
pub const BUDGET_FACTOR: u64 = 25;

/// "name (type, capacity N)" or "name (type, unbounded)".
pub fn describe_holder(holder: &Holder) -> String {
    let short = holder
        .type_name
        .rsplit('.')
        .next()
        .unwrap_or(&holder.type_name);
    match &holder.bound {
        Some(bound) => format!(
            "{} ({short}, capacity {})",
            holder.name,
            format_quantity(bound.capacity as f64, crate::units::Unit::Count)
        ),
        None => format!("{} ({short}, no bound)", holder.name),
    }
}
