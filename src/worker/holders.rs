//! The run past a look that would call growth a leak, while bounded holders fill.
//!
//! See [`crate::holders`] for the why. Here: probe, a short run to measure how fast each holder
//! fills, then either stop (an unbounded holder, or a fill beyond the budget) or run on until
//! every major bounded holder is full and `2 × iterations` more, recording the holders' size at
//! every sample so the verdict can take their sawtooth out.

use std::time::Instant;

use crate::holders::{
    BUDGET_FACTOR, Bound, EXTEND_SHARE, GROWING_MIN_ENTRIES, GROWING_MIN_RATE, HolderReport,
    MAJOR_SHARE, Outcome, Probe,
};
use crate::protocol::{Phase, SampleKind};
use crate::scenario::{MAX_SAMPLES, Scenario};
use crate::verdict::{self, Plan, Verdict};

use super::{Failure, Sampler};

/// Share of the scenario's `timeout` an extension may use, judged from the pace so far.
const TIME_SHARE: f64 = 0.5;

/// Samples of the window judged after saturation, about as many as a default run has (each
/// collects the objects made since setup, see `freeze.rs`).
const POST_SAMPLES: u64 = 100;

/// Windows of `2 × iterations` the run may go on for after saturation while its verdict is open.
const POST_ROUNDS: usize = 3;

/// A holder this many times over its advertised capacity does not keep to it: SQLAlchemy's
/// LRU, trimmed at 1.5 × its capacity, is the most lenient seen.
const OVERFULL: f64 = 2.0;

/// Runs the probe at iteration `done` (warmup included), measured at look `look`, and whatever
/// extension it calls for; returns the report and the iteration the run has reached. `started`
/// is when the worker started (the scenario's `timeout` counts from there), `iterating` when
/// its warmup did: the pace of the iterations is judged from that, never from the start-up's
/// imports, which under load took 28 s of a Babel scenario whose iterations took 0.05 s and
/// made its cache look beyond the time budget.
pub(super) fn extend(
    sampler: &mut Sampler<'_>,
    scenario: &Scenario,
    plan: &Plan,
    look: usize,
    done: u64,
    started: Instant,
    iterating: Instant,
) -> Result<(HolderReport, u64), Failure> {
    let warmup = scenario.warmup;
    let probed_at = done - warmup;
    let mut report = HolderReport {
        look,
        probed_at,
        probe: Probe {
            survivors: 0,
            sampled: 0,
            unattributed: 0,
            holders: Vec::new(),
        },
        outcome: Outcome::Unbounded,
        sizes: Vec::new(),
        note: None,
        probe_secs: 0.0,
    };
    let clock = Instant::now();
    let probed = sampler.interpreter.probe_holders();
    report.probe_secs = clock.elapsed().as_secs_f64();
    let probe = match probed {
        Ok(json) => {
            serde_json::from_str::<Probe>(&json).map_err(|err| format!("undecodable probe: {err}"))
        }
        Err(failure) => Err(failure.message),
    };
    report.probe = match probe {
        Ok(probe) => probe,
        Err(why) => {
            report.note = Some(why);
            return Ok((report, done));
        }
    };
    let count = report.probe.holders.len();
    let before = sizes(sampler, count)?;
    let mut tracks: Vec<Track> = before.iter().map(|&size| Track::new(size)).collect();

    // How fast each holder fills: a quarter of `iterations`, at least one sample.
    let every = scenario.sample_every.max(1);
    let rate_end = done + (scenario.iterations / 4).max(every);
    let mut at = done;
    let mut after = before.clone();
    let none = vec![false; count];
    while at < rate_end {
        (at, after) = step(
            sampler,
            &mut report,
            &none,
            at,
            rate_end,
            every,
            &mut tracks,
        )?;
    }
    report.sizes.clear();
    let span = (at - done) as f64;
    let grew = |k: usize| match (before[k], after[k]) {
        (Some(a), Some(b)) => b - a,
        _ => 0.0,
    };
    let growing = |k: usize| grew(k) >= GROWING_MIN_ENTRIES && grew(k) / span >= GROWING_MIN_RATE;
    // Scanned containers matter only when they grow; the rest are dropped here, so later size
    // readings cost a few `len()`s.
    let kept: Vec<usize> = (0..count)
        .filter(|&k| !report.probe.holders[k].scanned || growing(k))
        .collect();
    for &k in &kept {
        report.probe.holders[k].growth = Some(grew(k) / span);
    }
    // From here on every per-holder vector is indexed like the kept holders.
    let kept_grew: Vec<f64> = kept.iter().map(|&k| grew(k)).collect();
    let kept_growing: Vec<bool> = kept.iter().map(|&k| growing(k)).collect();
    let before: Vec<Option<f64>> = kept.iter().map(|&k| before[k]).collect();
    let after: Vec<Option<f64>> = kept.iter().map(|&k| after[k]).collect();
    let mut tracks: Vec<Track> = kept.iter().map(|&k| tracks[k]).collect();
    report.probe.holders = kept
        .iter()
        .map(|&k| report.probe.holders[k].clone())
        .collect();
    // Module constants bounding the kept module globals, read only for the few kept.
    let bounds = sampler.interpreter.keep_holders(&kept)?;
    match serde_json::from_str::<Vec<Option<Bound>>>(&bounds) {
        Ok(bounds) if bounds.len() == kept.len() => {
            for (holder, bound) in report.probe.holders.iter_mut().zip(bounds) {
                if holder.bound.is_none() {
                    holder.bound = bound;
                }
            }
        }
        Ok(_) => report.note = Some("the holders' bounds did not match the holders kept".into()),
        Err(err) => report.note = Some(format!("undecodable holder bounds: {err}")),
    }
    let holders = &report.probe.holders;
    let grew = |k: usize| kept_grew[k];
    let growing = |k: usize| kept_growing[k];
    let count = holders.len();
    if (0..count).any(|k| holders[k].bound.is_none() && growing(k)) {
        // An unbounded container grows: it holds the leak, decided at the look.
        return Ok((report, at));
    }
    let capacity: Vec<Option<f64>> = holders
        .iter()
        .map(|h| h.bound.as_ref().map(|b| b.capacity as f64))
        .collect();
    let major: Vec<bool> = (0..count)
        .map(|k| holders[k].bound.is_some() && (holders[k].share >= MAJOR_SHARE || growing(k)))
        .collect();
    let scanned_bounded_grows = (0..count).any(|k| major[k] && holders[k].scanned);
    if report.probe.bounded_share() < EXTEND_SHARE && !scanned_bounded_grows {
        // What grew is mostly held elsewhere (or nowhere the probe could see).
        return Ok((report, at));
    }
    // Iterations until every major holder still filling is full, at its pace so far.
    let mut to_fill = 0.0f64;
    let mut filling = false;
    for k in (0..after.len()).filter(|&k| major[k]) {
        let (Some(size), Some(cap)) = (after[k], capacity[k]) else {
            continue;
        };
        let full = size >= cap || tracks[k].trims > 0;
        let rate = grew(k) / span;
        if full {
            filling = true;
        } else if rate > 0.0 {
            filling = true;
            to_fill = to_fill.max((cap - size) / rate);
        }
    }
    if !filling {
        // The bounded holders neither fill nor are full: what grows is elsewhere.
        return Ok((report, at));
    }
    let post = 2 * scenario.iterations;
    let budget = if scenario.max_iterations_set {
        scenario.max_iterations
    } else {
        scenario
            .max_iterations
            .max(BUDGET_FACTOR.saturating_mul(scenario.iterations))
            // As many samples as any run may take (see `scenario::MAX_SAMPLES`).
            .min(MAX_SAMPLES.saturating_mul(every) / 2)
    };
    let fill_at = (at - warmup).saturating_add(to_fill.ceil() as u64);
    let pace = iterating.elapsed().as_secs_f64() / at.max(1) as f64;
    let time_left = scenario.timeout_secs * TIME_SHARE - started.elapsed().as_secs_f64();
    let needed = (fill_at + post).saturating_sub(at - warmup);
    let too_many = fill_at.saturating_add(post) > budget;
    if too_many || pace * needed as f64 > time_left {
        report.outcome = Outcome::BeyondBudget {
            fill_at,
            budget,
            timeout_secs: (!too_many).then_some(scenario.timeout_secs),
        };
        return Ok((report, at));
    }
    // Room for every sample the extension can take, made now: vectors growing later would show
    // in `malloc` inside the window that is judged.
    let post_every = every.max(post / POST_SAMPLES);
    let most_samples =
        ((warmup + budget).saturating_sub(at) / every + post / post_every + 2) as usize;
    sampler.measured.reserve(most_samples);
    report.sizes.reserve(most_samples);

    // Run until every major holder is full: at capacity and no longer growing, or trimmed twice
    // (the first trim of a cache that drops entries in bulk is followed by a cycle of settling:
    // its tables resize, freed memory is reused).
    let last_start = warmup + budget - post;
    let mut previous = before;
    let mut now = after;
    loop {
        let full = |k: usize| match (now[k], capacity[k]) {
            (Some(size), Some(cap)) => {
                tracks[k].trims >= 2 || (size >= cap && previous[k] == Some(size))
            }
            _ => true,
        };
        if (0..now.len()).filter(|&k| major[k]).all(full) {
            break;
        }
        let overfull = (0..now.len()).any(|k| {
            major[k]
                && matches!((now[k], capacity[k]), (Some(size), Some(cap)) if size > OVERFULL * cap)
        });
        if at >= last_start || overfull {
            report.outcome = Outcome::NotFilled { end: at - warmup };
            return Ok((report, at));
        }
        let target = (at + every).min(last_start);
        previous = now;
        (at, now) = step(sampler, &mut report, &major, at, target, every, &mut tracks)?;
    }
    // From here on the holders evict what was alive at the probe: collect what setup made and
    // they evicted while filling (see `_leakcheck_holders.thaw`).
    sampler.interpreter.holders_full()?;
    let saturated_at = at - warmup;
    let mut window = PostWindow {
        major: &major,
        tracks: &mut tracks,
        post,
        every: post_every,
        limit: warmup + budget,
    };
    at = window.judge(sampler, plan, &mut report, at, saturated_at)?;
    // Entries that setup made are frozen, and once evicted are garbage no sample collected. The
    // collection at saturation catches those evicted while the holders filled (a cache evicts
    // its oldest first); if the window evicted some only now, judge a window of its own, the
    // heap unfrozen for good (see `_leakcheck_holders.settled`).
    if sampler.interpreter.holders_settled()? > 0 {
        at = window.judge(sampler, plan, &mut report, at, at - warmup)?;
    }
    Ok((report, at))
}

/// The window judged after saturation, and how it is sampled.
struct PostWindow<'a> {
    major: &'a [bool],
    tracks: &'a mut [Track],
    /// Its length, in iterations: `2 × iterations`.
    post: u64,
    /// Iterations per sample.
    every: u64,
    /// The budget's end (warmup included).
    limit: u64,
}

impl PostWindow<'_> {
    /// Runs the window from iteration `at`, the holders full since measured iteration
    /// `saturated_at`: `post` iterations, and more while the verdict on it is still open,
    /// within the budget (noise that straddles the tolerance narrows with more samples).
    /// Records the outcome; returns the iteration reached.
    fn judge(
        &mut self,
        sampler: &mut Sampler<'_>,
        plan: &Plan,
        report: &mut HolderReport,
        mut at: u64,
        saturated_at: u64,
    ) -> Result<u64, Failure> {
        let warmup = plan.warmup;
        let mut end = at + self.post;
        for _ in 0..POST_ROUNDS {
            while at < end {
                (at, _) = step(
                    sampler,
                    report,
                    self.major,
                    at,
                    end,
                    self.every,
                    self.tracks,
                )?;
            }
            report.outcome = Outcome::Saturated {
                saturated_at,
                end: at - warmup,
            };
            let decision = verdict::decide_with_holders(&sampler.measured, plan, report);
            if decision.verdict != Verdict::Inconclusive || at + self.post > self.limit {
                break;
            }
            end = at + self.post;
        }
        Ok(at)
    }
}

/// Runs one sample's worth of measured iterations from `at` (up to `limit`), takes the sample
/// and records the major bounded holders' total size with it; returns the iteration reached and
/// every holder's size there.
fn step(
    sampler: &mut Sampler<'_>,
    report: &mut HolderReport,
    major: &[bool],
    at: u64,
    limit: u64,
    every: u64,
    tracks: &mut [Track],
) -> Result<(u64, Vec<Option<f64>>), Failure> {
    let stop = (at + every).min(limit);
    sampler.interpreter.run_chunk(Phase::Measure, at, stop)?;
    sampler.take(stop, SampleKind::Measure)?;
    sampler.progress(stop)?;
    let now = sizes(sampler, major.len())?;
    let total: f64 = (0..now.len())
        .filter(|&k| major.get(k).copied().unwrap_or(false))
        .filter_map(|k| now[k])
        .sum();
    report.sizes.push((stop, total));
    for (track, size) in tracks.iter_mut().zip(&now) {
        track.saw(*size);
    }
    Ok((stop, now))
}

/// What was seen of one holder's size: its last reading, and how often it dropped.
#[derive(Clone, Copy, Debug)]
struct Track {
    last: Option<f64>,
    trims: u32,
}

impl Track {
    fn new(size: Option<f64>) -> Self {
        Track {
            last: size,
            trims: 0,
        }
    }

    fn saw(&mut self, size: Option<f64>) {
        if let (Some(last), Some(size)) = (self.last, size)
            && size < last
        {
            self.trims += 1;
        }
        self.last = size.or(self.last);
    }
}

/// The current size of each of the last probe's `count` holders, in its order (`None` for one
/// without a length, or for all of them should the answer not decode).
fn sizes(sampler: &Sampler<'_>, count: usize) -> Result<Vec<Option<f64>>, Failure> {
    let json = sampler.interpreter.holder_sizes()?;
    let sizes = serde_json::from_str::<Vec<Option<f64>>>(&json)
        .ok()
        .filter(|s| s.len() == count);
    Ok(sizes.unwrap_or_else(|| vec![None; count]))
}
