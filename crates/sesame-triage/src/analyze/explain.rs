//! Who is affected and where the time went: attribute values and pairs of
//! them that slow logins have far more often than all logins (support among
//! the slow, then risk ratio, after MacroBase), the mean stage times of slow
//! against normal logins, and which stage grew in each slow login and in
//! each group (an [`Attribution`] over the sample of slow logins, built once
//! from bounded state, never per line).

use super::{duration, percent, Options, EVERYDAY_SLOW_SHARE};
use crate::dims::{DIMENSIONS, EMPTY, OTHER};
use crate::scan::{Sample, Scan, StageSums};
use rustc_hash::FxHashMap;
use serde::Serialize;
use sesame_domain::event::Stage;

const MAX_EXPLANATIONS: usize = 10;
/// A pair is reported only if it beats both of its parts by this factor.
const PAIR_GAIN: f64 = 1.2;
/// An explanation must be this many percentage points more common among
/// slow logins than among all: 100% against 94% says little.
const MIN_SHARE_GAP: f64 = 10.0;
/// Fewer slow logins than this are anecdotes, whatever their share.
const MIN_SLOW_LOGINS: f64 = 30.0;
/// A stage besides the dominant one is named in the stage sentence when it
/// took this share of the slow logins' extra time.
const ALSO_GREW_SHARE: f64 = 0.1;
/// A stage is explained on its own (and is a cause) when it grew most in
/// this share of the slow logins: below it are the everyday slow logins
/// that any stage has.
const MATERIAL_SHARE: f64 = 0.1;

/// The timed stages and the time outside them (parsing, rate limiting,
/// scheduling), in the order of the stage table and of
/// [`crate::scan::StageTimes`].
pub const STAGES: [&str; 5] = [
    Stage::Queue.as_str(),
    Stage::Hash.as_str(),
    Stage::Db.as_str(),
    Stage::Session.as_str(),
    "other",
];

#[derive(Debug, Serialize)]
pub struct Explanation {
    pub attributes: Vec<String>,
    pub slow_logins: u64,
    pub logins: u64,
    pub slow_pct: f64,
    pub all_pct: f64,
    /// `None` when every slow login has these attributes and no other login is slow.
    pub risk_ratio: Option<f64>,
    /// Pair counts come from a uniform sample once the log outgrows it.
    pub estimated: bool,
    /// The stage that grew most in these slow logins (their mean against
    /// the normal logins'), and by how much.
    pub stage: Option<&'static str>,
    pub stage_grew_ms: Option<f64>,
    pub sentence: String,
    /// The attributes as (dimension, value id).
    #[serde(skip)]
    pub(super) key: Vec<(usize, u16)>,
}

#[derive(Debug, Serialize, Default)]
pub struct StageMeans {
    pub logins: u64,
    pub total_ms: f64,
    pub queue_ms: f64,
    pub hash_ms: f64,
    pub db_ms: f64,
    pub session_ms: f64,
    /// Time outside the timed stages (parsing, rate limiting, scheduling).
    pub other_ms: f64,
}

impl StageMeans {
    /// In the order of [`STAGES`].
    pub fn parts(&self) -> [f64; STAGES.len()] {
        [
            self.queue_ms,
            self.hash_ms,
            self.db_ms,
            self.session_ms,
            self.other_ms,
        ]
    }
}

#[derive(Debug, Serialize)]
pub struct Stages {
    pub slow: StageMeans,
    pub normal: StageMeans,
    pub dominant: Option<String>,
    pub sentence: String,
}

impl Stages {
    /// Each stage with its mean among slow and among normal logins, then
    /// the total: the rows of the report's "where the time went".
    pub fn rows(&self) -> impl Iterator<Item = (&'static str, f64, f64)> {
        let parts = STAGES
            .into_iter()
            .zip(self.slow.parts())
            .zip(self.normal.parts());
        parts
            .map(|((name, slow), normal)| (name, slow, normal))
            .chain([("total", self.slow.total_ms, self.normal.total_ms)])
    }
}

fn means(sums: &StageSums) -> StageMeans {
    let n = sums.logins.max(1) as f64;
    let [queue, hash, db, session] = sums.stages_ms.map(|s| s / n);
    let total = sums.total_ms / n;
    StageMeans {
        logins: sums.logins,
        total_ms: total,
        queue_ms: queue,
        hash_ms: hash,
        db_ms: db,
        session_ms: session,
        other_ms: (total - queue - hash - db - session).max(0.0),
    }
}

/// Where the time went: mean stage times of slow and normal logins; the
/// dominant stage is the one that grew the most, and any other that took a
/// good part of the extra time is named too (two incidents at once).
pub(super) fn stages(scan: &Scan) -> Stages {
    let normal = means(&scan.stage_sums[0]);
    let slow = means(&scan.stage_sums[1]);
    if slow.logins == 0 {
        return Stages {
            sentence: format!(
                "No login took {} or more.",
                duration(scan.settings.threshold_ms)
            ),
            slow,
            normal,
            dominant: None,
        };
    }
    let extra = slow.total_ms - normal.total_ms;
    let grown: Vec<(&str, f64)> = STAGES
        .iter()
        .zip(slow.parts().iter().zip(normal.parts()))
        .map(|(&name, (s, n))| (name, s - n))
        .collect();
    let (name, grew) = *grown
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("five stages");
    let share = |grew: f64| percent(100.0 * grew / extra.max(f64::EPSILON));
    let mut also: Vec<(&str, f64)> = grown
        .iter()
        .copied()
        .filter(|&(other, g)| other != name && extra > 0.0 && g >= ALSO_GREW_SHARE * extra)
        .collect();
    also.sort_by(|a, b| b.1.total_cmp(&a.1));
    let also: String = also
        .iter()
        .map(|&(other, g)| format!(", the {other} stage by {}, {}", duration(g), share(g)))
        .collect();
    let sentence = format!(
        "Slow logins took {} on average against {} for the others; the {name} stage grew by {}, {} of the difference{also}.",
        duration(slow.total_ms),
        duration(normal.total_ms),
        duration(grew),
        share(grew),
    );
    Stages {
        slow,
        normal,
        dominant: Some(name.to_owned()),
        sentence,
    }
}

/// The sampled slow logins, each put under the stage that grew most in it
/// against the normal logins' mean: how many slow logins each stage
/// slowed, and in whom. Bounded by the sample, whatever the log's size.
pub(super) struct Attribution<'a> {
    sample: &'a Sample,
    normal: [f64; STAGES.len()],
    /// Per sampled slow login, its stage (index into [`STAGES`]).
    class: Vec<u8>,
    /// Per stage: the sampled slow logins under it, and the sum of their
    /// extra milliseconds in it.
    per_stage: [(u64, f64); STAGES.len()],
    /// Per stage, per dimension, per value id: the sampled slow logins
    /// under the stage with the value.
    singles: [Vec<Vec<u32>>; STAGES.len()],
    /// More slow logins than the everyday tail.
    incident: bool,
}

/// A group's sampled slow logins.
pub(super) struct GroupStages {
    /// By the stage that grew most in each.
    pub by_stage: [u64; STAGES.len()],
    /// The stage that grew most in their mean, and by how much.
    pub grown: Option<(usize, f64)>,
}

impl<'a> Attribution<'a> {
    pub fn new(scan: &'a Scan, normal: &StageMeans) -> Self {
        let sample = &scan.slow_sample;
        let normal = normal.parts();
        let mut per_stage = [(0, 0.0); STAGES.len()];
        let mut singles: [Vec<Vec<u32>>; STAGES.len()] =
            std::array::from_fn(|_| scan.counts.iter().map(|c| vec![0; c.len()]).collect());
        let class = sample
            .stages
            .iter()
            .zip(&sample.tuples)
            .map(|(times, tuple)| {
                let (stage, extra) = largest_extra(times, &normal);
                per_stage[stage].0 += 1;
                per_stage[stage].1 += extra;
                for (counts, &id) in singles[stage].iter_mut().zip(tuple) {
                    counts[usize::from(id)] += 1;
                }
                stage as u8
            })
            .collect();
        Self {
            sample,
            normal,
            class,
            per_stage,
            singles,
            incident: scan.slow > 0 && scan.slow as f64 >= EVERYDAY_SLOW_SHARE * scan.logins as f64,
        }
    }

    /// The stages that grew most in a material share of the slow logins,
    /// none for the everyday tail.
    pub fn material(&self) -> Vec<usize> {
        (0..STAGES.len())
            .filter(|&stage| self.incident && self.share(stage) >= MATERIAL_SHARE)
            .collect()
    }

    /// Share (0 to 1) of the slow logins under `stage`.
    pub fn share(&self, stage: usize) -> f64 {
        self.per_stage[stage].0 as f64 / self.class.len().max(1) as f64
    }

    /// Sampled slow logins under `stage`.
    pub fn sampled(&self, stage: usize) -> u64 {
        self.per_stage[stage].0
    }

    /// Sampled slow logins under `stage` with value `id` of `dim`.
    fn sampled_with(&self, stage: usize, dim: usize, id: usize) -> u64 {
        self.singles[stage][dim]
            .get(id)
            .copied()
            .map_or(0, u64::from)
    }

    /// Mean extra milliseconds in `stage` of the slow logins under it.
    pub fn grew_ms(&self, stage: usize) -> f64 {
        let (n, extra) = self.per_stage[stage];
        extra / n.max(1) as f64
    }

    /// Share (0 to 1) of the slow logins under `stage` that have this value.
    pub fn share_with(&self, stage: usize, dim: usize, id: Option<u16>) -> f64 {
        let with = id.map_or(0, |id| self.sampled_with(stage, dim, usize::from(id)));
        with as f64 / self.sampled(stage).max(1) as f64
    }

    pub fn group(&self, key: &[(usize, u16)]) -> GroupStages {
        let mut by_stage = [0; STAGES.len()];
        let mut sums = [0.0; STAGES.len()];
        let members = self
            .sample
            .tuples
            .iter()
            .zip(&self.sample.stages)
            .zip(&self.class)
            .filter(|((tuple, _), _)| key.iter().all(|&(dim, id)| tuple[dim] == id));
        for ((_, times), &class) in members {
            by_stage[usize::from(class)] += 1;
            for (sum, &ms) in sums.iter_mut().zip(times) {
                *sum += f64::from(ms);
            }
        }
        let n: u64 = by_stage.iter().sum();
        let grown = (n > 0).then(|| {
            let mean = sums.map(|s| s / n as f64);
            largest_extra(&mean, &self.normal)
        });
        GroupStages { by_stage, grown }
    }
}

/// The stage whose time exceeds the normal mean the most, and by how much.
fn largest_extra<T: Copy + Into<f64>>(times: &[T; STAGES.len()], normal: &[f64]) -> (usize, f64) {
    times
        .iter()
        .zip(normal)
        .map(|(&ms, n)| ms.into() - n)
        .enumerate()
        // The first of equals.
        .fold((0, f64::NEG_INFINITY), |best, (i, extra)| {
            if extra > best.1 {
                (i, extra)
            } else {
                best
            }
        })
}

fn risk_ratio(slow_x: f64, all_x: f64, slow: f64, all: f64) -> Option<f64> {
    let inside = slow_x / all_x;
    let outside_all = all - all_x;
    let outside = if outside_all > 0.0 {
        (slow - slow_x) / outside_all
    } else {
        0.0
    };
    (outside > 0.0).then(|| inside / outside)
}

fn candidate_order(a: &Explanation, b: &Explanation) -> std::cmp::Ordering {
    let rr = |e: &Explanation| e.risk_ratio.unwrap_or(f64::INFINITY);
    // Equal risk: the more specific explanation (fewer logins) first.
    rr(b)
        .total_cmp(&rr(a))
        .then(a.all_pct.total_cmp(&b.all_pct))
}

/// Which slow logins are explained: all of them, or those under one stage
/// (the other stages' slow logins then count as not slow, so that a second
/// incident is not hidden behind a larger first one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outliers {
    Slow,
    Stage(usize),
}

/// What the slow logins have far more often than all logins.
pub(super) struct Explained {
    /// Who is affected, of all slow logins; each group with the stage that
    /// grew in it.
    pub affected: Vec<Explanation>,
    /// Per stage that grew in a material share of the slow logins (index
    /// into [`STAGES`]): the group its own slow logins are concentrated on,
    /// if one stands out.
    pub focus: Vec<(usize, Option<Explanation>)>,
}

/// Who is affected (all slow logins), and the group of each stage that grew
/// in a material share of them, explained separately.
pub(super) fn explain(scan: &Scan, options: &Options, attribution: &Attribution) -> Explained {
    let stages = attribution.material();
    let sets: Vec<Outliers> = std::iter::once(Outliers::Slow)
        .chain(stages.iter().copied().map(Outliers::Stage))
        .collect();
    let mut found = explain_sets(scan, options, attribution, &sets).into_iter();
    let mut affected = found.next().unwrap_or_default();
    // Each group explained on its own: two incidents at once hit two groups
    // in two stages.
    for e in &mut affected {
        if let Some((stage, grew)) = attribution.group(&e.key).grown {
            e.stage = Some(STAGES[stage]);
            e.stage_grew_ms = Some(grew);
            e.sentence += &format!("; their {} stage grew by {}", STAGES[stage], duration(grew));
        }
    }
    let focus = stages
        .into_iter()
        .zip(found)
        .map(|(stage, groups)| (stage, groups.into_iter().next()))
        .collect();
    Explained { affected, focus }
}

/// Attribute values and pairs of them that a set of slow logins has far
/// more often than logins at large (MacroBase: support among the outliers,
/// then risk ratio; pairs only of values with support, apriori), for each
/// set at once: one pass over the samples whatever their number.
fn explain_sets(
    scan: &Scan,
    options: &Options,
    attribution: &Attribution,
    sets: &[Outliers],
) -> Vec<Vec<Explanation>> {
    let mut found: Vec<Vec<Explanation>> = sets.iter().map(|_| Vec::new()).collect();
    if scan.slow == 0 {
        return found;
    }
    let all = scan.logins as f64;
    let scale = |sample: &Sample| {
        if sample.tuples.is_empty() {
            0.0
        } else {
            sample.seen as f64 / sample.tuples.len() as f64
        }
    };
    let (normal_scale, slow_scale) = (scale(&scan.normal_sample), scale(&scan.slow_sample));
    // The outliers of a set: all of them, and those with one value.
    let outliers = |set: Outliers| match set {
        Outliers::Slow => scan.slow as f64,
        Outliers::Stage(s) => attribution.sampled(s) as f64 * slow_scale,
    };
    let outliers_with = |set: Outliers, dim: usize, id: usize, slow_x: u64| match set {
        Outliers::Slow => slow_x as f64,
        Outliers::Stage(s) => attribution.sampled_with(s, dim, id) as f64 * slow_scale,
    };
    let dicts = &scan.dictionaries;
    let describe = |set: Outliers, attrs: &[(usize, u16)], slow_x: f64, all_x: f64, estimated| {
        let slow = outliers(set);
        let labels: Vec<String> = attrs.iter().map(|&(d, v)| dicts.label(d, v)).collect();
        let risk_ratio = risk_ratio(slow_x, all_x, slow, all);
        let (slow_pct, all_pct) = (100.0 * slow_x / slow, 100.0 * all_x / all);
        let sentence = format!(
            "{} of {} are {}, against {} of all logins ({})",
            percent(slow_pct),
            match set {
                Outliers::Slow => "slow logins".to_owned(),
                Outliers::Stage(s) => format!("the logins slowed in the {} stage", STAGES[s]),
            },
            labels.join(" and "),
            percent(all_pct),
            match risk_ratio {
                Some(rr) => format!("{rr:.1}x as likely to be slow"),
                None => "no other login is slow".to_owned(),
            }
        );
        Explanation {
            attributes: labels,
            slow_logins: slow_x.round() as u64,
            logins: all_x.round() as u64,
            slow_pct,
            all_pct,
            risk_ratio,
            estimated,
            stage: None,
            stage_grew_ms: None,
            sentence,
            key: attrs.to_vec(),
        }
    };

    // Single values: exact for all slow logins, from the sample for those
    // of a stage. Per set, the supported ones with their risk ratio and
    // logins.
    let mut supported: Vec<FxHashMap<(usize, u16), (f64, f64)>> =
        sets.iter().map(|_| FxHashMap::default()).collect();
    // Every value supported in some set, each with its index here.
    let mut union: Vec<(usize, u16)> = Vec::new();
    let mut position: Vec<Vec<Option<usize>>> =
        scan.counts.iter().map(|c| vec![None; c.len()]).collect();
    for (k, &set) in sets.iter().enumerate() {
        let needed = (options.min_support * outliers(set)).max(MIN_SLOW_LOGINS);
        let estimated = set != Outliers::Slow && slow_scale > 1.0;
        for (dim, counts) in scan.counts.iter().enumerate() {
            for (id, &[all_x, slow_x]) in counts.iter().enumerate() {
                let slow_x = outliers_with(set, dim, id, slow_x);
                let id = id as u16;
                if id == EMPTY || id == OTHER || slow_x < needed {
                    continue;
                }
                let slot = &mut position[dim][usize::from(id)];
                if slot.is_none() {
                    *slot = Some(union.len());
                    union.push((dim, id));
                }
                let e = describe(set, &[(dim, id)], slow_x, all_x as f64, estimated);
                supported[k].insert(
                    (dim, id),
                    (e.risk_ratio.unwrap_or(f64::INFINITY), all_x as f64),
                );
                let strong = e.risk_ratio.is_none_or(|rr| rr >= options.min_risk_ratio);
                if all_x < scan.logins && strong && e.slow_pct - e.all_pct >= MIN_SHARE_GAP {
                    found[k].push(e);
                }
            }
        }
    }

    // Pairs of supported values, counted in the samples: among normal
    // logins (column 0) and slow ones by their stage (1 + stage).
    let mut pair_counts: FxHashMap<(usize, usize), [u64; 1 + STAGES.len()]> = FxHashMap::default();
    let normal = scan.normal_sample.tuples.iter().map(|t| (t, 0));
    let slow = (scan.slow_sample.tuples.iter())
        .zip(&attribution.class)
        .map(|(t, &class)| (t, 1 + usize::from(class)));
    let mut present = Vec::with_capacity(DIMENSIONS);
    for (tuple, column) in normal.chain(slow) {
        present.clear();
        present.extend(
            tuple
                .iter()
                .enumerate()
                .filter_map(|(dim, &id)| position[dim].get(usize::from(id)).copied().flatten()),
        );
        for (i, &a) in present.iter().enumerate() {
            for &b in &present[i + 1..] {
                pair_counts.entry((a, b)).or_default()[column] += 1;
            }
        }
    }
    let estimated = normal_scale > 1.0 || slow_scale > 1.0;
    for (&(a, b), counts) in &pair_counts {
        let (x, y) = (union[a], union[b]);
        let slow_n: u64 = counts[1..].iter().sum();
        let all_x = slow_n as f64 * slow_scale + counts[0] as f64 * normal_scale;
        for (k, &set) in sets.iter().enumerate() {
            let (Some(&part_x), Some(&part_y)) = (supported[k].get(&x), supported[k].get(&y))
            else {
                continue;
            };
            let slow_x = match set {
                Outliers::Slow => slow_n,
                Outliers::Stage(s) => counts[1 + s],
            } as f64
                * slow_scale;
            if slow_x < (options.min_support * outliers(set)).max(MIN_SLOW_LOGINS) {
                continue;
            }
            let e = describe(set, &[x, y], slow_x, all_x, estimated);
            let parts_best = part_x.0.max(part_y.0);
            let parts_smallest = part_x.1.min(part_y.1);
            let rr = e.risk_ratio.unwrap_or(f64::INFINITY);
            // A pair must say more than its parts: a higher risk, or (when
            // nothing else is slow at all) the same slow logins in fewer logins.
            let sharper = rr > parts_best * PAIR_GAIN
                || (rr.is_infinite() && all_x < parts_smallest * (1.0 / PAIR_GAIN));
            if rr >= options.min_risk_ratio && sharper && e.slow_pct - e.all_pct >= MIN_SHARE_GAP {
                found[k].push(e);
            }
        }
    }
    for found in &mut found {
        found.sort_by(candidate_order);
        found.truncate(MAX_EXPLANATIONS);
    }
    found
}
