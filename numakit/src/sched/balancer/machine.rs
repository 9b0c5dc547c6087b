//! The per-group decision state machine, free of system calls so that it
//! can be tested on samples made up by hand.
//!
//! | phase | on each interval's sample | next |
//! |---|---|---|
//! | `Watching { streak }` | memory mostly (≥ threshold) on node M, threads not on M | `streak + 1`; at `hysteresis`: act if the policy, the target and the budget allow (→ `Verifying`), else report why once and keep watching |
//! | `Watching { streak }` | otherwise | `streak = 0` |
//! | `Verifying { before }` | locality (share of sampled pages on the threads' node) rose by ≥ `min_improvement`, or is now ≥ threshold | `Watching { 0 }` ("improved") |
//! | `Verifying { before }` | it did not | `Stopped` ("do no harm": never act on the group again until `resume`) |
//! | `Stopped` | — | `Stopped` |

use super::BalancePolicy;
use crate::topology::NodeId;
use std::collections::BTreeMap;

/// Where a group's threads may run, from their CPU masks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ThreadPlace {
    /// The group has no (live) threads.
    NoThreads,
    /// Every thread's mask lies within this node.
    One(NodeId),
    /// The masks span these nodes.
    Spread(Vec<NodeId>),
}

/// One interval's look at a group.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sample {
    pub(crate) threads: ThreadPlace,
    /// Sampled pages per node (present pages only).
    pub(crate) pages: BTreeMap<NodeId, usize>,
    /// Pages looked at (present or not).
    pub(crate) sampled: usize,
    /// Cache misses of the group's threads during the interval, where
    /// counters exist.
    pub(crate) cache_misses: Option<u64>,
}

impl Sample {
    pub(crate) fn present(&self) -> usize {
        self.pages.values().sum()
    }
    /// The node holding the most sampled pages (lowest id on ties) and its
    /// share.
    pub(crate) fn majority(&self) -> Option<(NodeId, f64)> {
        let present = self.present();
        let (&node, &n) = self
            .pages
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))?;
        (present > 0).then(|| (node, n as f64 / present as f64))
    }
    /// The share of sampled pages on `node`.
    pub(crate) fn share_on(&self, node: NodeId) -> f64 {
        match self.present() {
            0 => 1.0,
            p => self.pages.get(&node).copied().unwrap_or(0) as f64 / p as f64,
        }
    }
    /// Locality: the share of pages on the threads' node (0 when the
    /// threads span several nodes, 1 without threads or pages).
    pub(crate) fn locality(&self) -> f64 {
        match &self.threads {
            ThreadPlace::One(n) => self.share_on(*n),
            ThreadPlace::Spread(_) => 0.0,
            ThreadPlace::NoThreads => 1.0,
        }
    }
}

/// The knobs the machine needs.
#[derive(Clone, Debug)]
pub(crate) struct Rules {
    pub(crate) policy: BalancePolicy,
    pub(crate) hysteresis: u32,
    pub(crate) threshold: f64,
    pub(crate) min_improvement: f64,
    pub(crate) min_cache_misses: u64,
}

/// Why an action cannot be taken on a target (from the topology and the
/// process's allowed CPUs), or `None` when it can.
pub(crate) trait Targets {
    /// Whether threads can be moved to `node` (it has allowed CPUs, and its
    /// memory, if any, is among the process's memory nodes).
    fn thread_target_problem(&self, node: NodeId) -> Option<String>;
    /// Whether pages can be moved to `node` (it has memory the process may
    /// use).
    fn page_target_problem(&self, node: NodeId) -> Option<String>;
}

/// What the group's state machine is doing.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum GroupPhase {
    /// Sampling; `streak` consecutive intervals found the memory mostly on
    /// another node.
    Watching {
        /// Consecutive intervals with the memory elsewhere.
        streak: u32,
    },
    /// An action was taken; the next sample tells whether locality
    /// improved.
    Verifying {
        /// Locality (share of sampled pages on the threads' node) before
        /// the action.
        before: f64,
    },
    /// An action did not improve locality: the balancer leaves the group
    /// alone (do no harm) until [`resume`](super::BalancedGroup::resume).
    Stopped,
}

/// The kind of action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ActionKind {
    MoveThreads,
    MovePages,
}

/// The machine's verdict for one interval.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step {
    /// Nothing to report.
    Quiet,
    /// Act now (the caller spends the budget and calls [`Machine::acted`]).
    Act {
        kind: ActionKind,
        from: Option<NodeId>,
        to: NodeId,
        reason: String,
    },
    /// An action's result was checked.
    Verified {
        improved: bool,
        before: f64,
        after: f64,
    },
    /// The hysteresis is met but no action may be taken (reported once).
    Skip {
        from: Option<NodeId>,
        to: Option<NodeId>,
        reason: String,
    },
    /// The hysteresis is met but this interval's budget is spent
    /// (reported once per episode).
    Defer { from: Option<NodeId>, to: NodeId },
}

/// One group's state.
#[derive(Clone, Debug)]
pub(crate) struct Machine {
    pub(crate) phase: GroupPhase,
    /// Whether the current episode's skip/defer was reported.
    reported: bool,
}

impl Default for Machine {
    fn default() -> Self {
        Machine {
            phase: GroupPhase::Watching { streak: 0 },
            reported: false,
        }
    }
}

impl Machine {
    /// Look at one interval's sample; `budget_left` says whether this
    /// interval may still act.
    pub(crate) fn step(
        &mut self,
        rules: &Rules,
        s: &Sample,
        budget_left: bool,
        targets: &dyn Targets,
    ) -> Step {
        match self.phase {
            GroupPhase::Stopped => Step::Quiet,
            GroupPhase::Verifying { before } => {
                let after = s.locality();
                let improved = after >= before + rules.min_improvement || after >= rules.threshold;
                self.phase = if improved {
                    GroupPhase::Watching { streak: 0 }
                } else {
                    GroupPhase::Stopped
                };
                self.reported = false;
                Step::Verified {
                    improved,
                    before,
                    after,
                }
            }
            GroupPhase::Watching { streak } => {
                let Some((mem, share)) = s.majority() else {
                    return self.calm();
                };
                let from = match &s.threads {
                    ThreadPlace::NoThreads => return self.calm(),
                    ThreadPlace::One(t) if *t == mem => return self.calm(),
                    ThreadPlace::One(t) => Some(*t),
                    ThreadPlace::Spread(_) => None,
                };
                if share < rules.threshold {
                    return self.calm();
                }
                let streak = streak.saturating_add(1);
                self.phase = GroupPhase::Watching { streak };
                if streak < rules.hysteresis {
                    return Step::Quiet;
                }
                let why =
                    format!(
                    "{:.0}% of the sampled pages are on node {mem} while the threads run on {} \
                     ({streak} intervals in a row)",
                    share * 100.0,
                    match (&s.threads, from) {
                        (_, Some(t)) => format!("node {t}"),
                        (ThreadPlace::Spread(ns), None) => format!(
                            "nodes {}",
                            ns.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
                        ),
                        _ => "no node".into(),
                    }
                );
                // `from`/`to` of what moves: threads go from their node to
                // the memory's, pages from the memory's node to the threads'.
                let (kind, from, to, problem) = match rules.policy {
                    BalancePolicy::Observe => {
                        return self.skip_once(from, Some(mem), format!("{why}; policy is Observe"))
                    }
                    BalancePolicy::MoveThreads => (
                        ActionKind::MoveThreads,
                        from,
                        mem,
                        targets.thread_target_problem(mem),
                    ),
                    BalancePolicy::MovePages => match from {
                        Some(t) => (
                            ActionKind::MovePages,
                            Some(mem),
                            t,
                            targets.page_target_problem(t),
                        ),
                        None => {
                            return self.skip_once(
                                None,
                                None,
                                format!(
                                    "{why}; MovePages needs the group's threads on one node to \
                                     know where the pages should go: pin them"
                                ),
                            )
                        }
                    },
                };
                if let Some(problem) = problem {
                    return self.skip_once(from, Some(to), format!("{why}; {problem}"));
                }
                if let Some(misses) = s.cache_misses {
                    if misses < rules.min_cache_misses {
                        return self.skip_once(
                            from,
                            Some(to),
                            format!(
                                "{why}; but only {misses} cache misses in the interval (threshold \
                                 {}): not worth moving",
                                rules.min_cache_misses
                            ),
                        );
                    }
                }
                if !budget_left {
                    if self.reported {
                        return Step::Quiet;
                    }
                    self.reported = true;
                    return Step::Defer { from, to };
                }
                Step::Act {
                    kind,
                    from,
                    to,
                    reason: why,
                }
            }
        }
    }

    /// The action was carried out; verify on the next sample.
    pub(crate) fn acted(&mut self, before: f64) {
        self.phase = GroupPhase::Verifying { before };
        self.reported = false;
    }

    /// The action failed outright: start counting again.
    pub(crate) fn failed(&mut self) {
        self.phase = GroupPhase::Watching { streak: 0 };
        self.reported = false;
    }

    /// Back to watching after a do-no-harm stop.
    pub(crate) fn resume(&mut self) {
        *self = Machine::default();
    }

    fn calm(&mut self) -> Step {
        self.phase = GroupPhase::Watching { streak: 0 };
        self.reported = false;
        Step::Quiet
    }

    fn skip_once(&mut self, from: Option<NodeId>, to: Option<NodeId>, reason: String) -> Step {
        if self.reported {
            return Step::Quiet;
        }
        self.reported = true;
        Step::Skip { from, to, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct AllOk;
    impl Targets for AllOk {
        fn thread_target_problem(&self, _: NodeId) -> Option<String> {
            None
        }
        fn page_target_problem(&self, _: NodeId) -> Option<String> {
            None
        }
    }
    struct NoMemoryOn(NodeId);
    impl Targets for NoMemoryOn {
        fn thread_target_problem(&self, _: NodeId) -> Option<String> {
            None
        }
        fn page_target_problem(&self, n: NodeId) -> Option<String> {
            (n == self.0).then(|| format!("node {n} has no memory"))
        }
    }

    fn n(i: u32) -> NodeId {
        NodeId::new(i)
    }

    fn rules(policy: BalancePolicy) -> Rules {
        Rules {
            policy,
            hysteresis: 3,
            threshold: 0.6,
            min_improvement: 0.1,
            min_cache_misses: 0,
        }
    }

    fn sample(thread: u32, on: &[(u32, usize)]) -> Sample {
        Sample {
            threads: ThreadPlace::One(n(thread)),
            pages: on.iter().map(|&(node, c)| (n(node), c)).collect(),
            sampled: on.iter().map(|p| p.1).sum(),
            cache_misses: None,
        }
    }

    #[test]
    fn acts_only_after_hysteresis_consecutive_intervals() {
        let mut m = Machine::default();
        let r = rules(BalancePolicy::MoveThreads);
        let remote = sample(0, &[(1, 60), (0, 4)]);
        assert_eq!(m.step(&r, &remote, true, &AllOk), Step::Quiet);
        assert_eq!(m.step(&r, &remote, true, &AllOk), Step::Quiet);
        // A local interval breaks the streak.
        assert_eq!(
            m.step(&r, &sample(0, &[(0, 64)]), true, &AllOk),
            Step::Quiet
        );
        assert_eq!(m.phase, GroupPhase::Watching { streak: 0 });
        assert_eq!(m.step(&r, &remote, true, &AllOk), Step::Quiet);
        assert_eq!(m.step(&r, &remote, true, &AllOk), Step::Quiet);
        match m.step(&r, &remote, true, &AllOk) {
            Step::Act { kind, from, to, .. } => {
                assert_eq!(
                    (kind, from, to),
                    (ActionKind::MoveThreads, Some(n(0)), n(1))
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn below_the_threshold_nothing_happens() {
        let mut m = Machine::default();
        let r = rules(BalancePolicy::MovePages);
        let mixed = sample(0, &[(1, 35), (0, 29)]); // 55% remote < 60%
        for _ in 0..10 {
            assert_eq!(m.step(&r, &mixed, true, &AllOk), Step::Quiet);
        }
    }

    #[test]
    fn move_pages_targets_the_threads_node() {
        let mut m = Machine::default();
        let r = rules(BalancePolicy::MovePages);
        let remote = sample(2, &[(1, 64)]);
        m.step(&r, &remote, true, &AllOk);
        m.step(&r, &remote, true, &AllOk);
        match m.step(&r, &remote, true, &AllOk) {
            Step::Act { kind, from, to, .. } => {
                assert_eq!((kind, from, to), (ActionKind::MovePages, Some(n(1)), n(2)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn improvement_resumes_watching_and_no_improvement_stops_for_good() {
        let r = rules(BalancePolicy::MovePages);
        let remote = sample(0, &[(1, 64)]);
        let mut m = Machine::default();
        for _ in 0..3 {
            m.step(&r, &remote, true, &AllOk);
        }
        m.acted(remote.locality());
        match m.step(&r, &sample(0, &[(0, 64)]), true, &AllOk) {
            Step::Verified {
                improved,
                before,
                after,
            } => {
                assert!(improved);
                assert_eq!((before, after), (0.0, 1.0));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(m.phase, GroupPhase::Watching { streak: 0 });

        // Do no harm: the pages did not move (pinned, or moved back).
        for _ in 0..3 {
            m.step(&r, &remote, true, &AllOk);
        }
        m.acted(0.0);
        assert!(matches!(
            m.step(&r, &sample(0, &[(1, 62), (0, 2)]), true, &AllOk),
            Step::Verified {
                improved: false,
                ..
            }
        ));
        assert_eq!(m.phase, GroupPhase::Stopped);
        for _ in 0..10 {
            assert_eq!(m.step(&r, &remote, true, &AllOk), Step::Quiet);
        }
        m.resume();
        assert_eq!(m.phase, GroupPhase::Watching { streak: 0 });
    }

    #[test]
    fn budget_defers_once_then_acts_when_budget_is_back() {
        let r = rules(BalancePolicy::MoveThreads);
        let remote = sample(0, &[(1, 64)]);
        let mut m = Machine::default();
        m.step(&r, &remote, false, &AllOk);
        m.step(&r, &remote, false, &AllOk);
        assert!(matches!(
            m.step(&r, &remote, false, &AllOk),
            Step::Defer { .. }
        ));
        assert_eq!(m.step(&r, &remote, false, &AllOk), Step::Quiet);
        assert!(matches!(
            m.step(&r, &remote, true, &AllOk),
            Step::Act { .. }
        ));
    }

    #[test]
    fn impossible_targets_and_observe_are_reported_once() {
        let remote = sample(0, &[(1, 64)]);
        let mut m = Machine::default();
        let r = rules(BalancePolicy::MovePages);
        let t = NoMemoryOn(n(0));
        m.step(&r, &remote, true, &t);
        m.step(&r, &remote, true, &t);
        match m.step(&r, &remote, true, &t) {
            Step::Skip { reason, .. } => assert!(reason.contains("no memory"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(m.step(&r, &remote, true, &t), Step::Quiet);

        let mut m = Machine::default();
        let r = rules(BalancePolicy::Observe);
        m.step(&r, &remote, true, &AllOk);
        m.step(&r, &remote, true, &AllOk);
        assert!(matches!(
            m.step(&r, &remote, true, &AllOk),
            Step::Skip { .. }
        ));
        assert_eq!(m.step(&r, &remote, true, &AllOk), Step::Quiet);
    }

    #[test]
    fn spread_threads_can_be_gathered_but_pages_have_no_destination() {
        let spread = Sample {
            threads: ThreadPlace::Spread(vec![n(0), n(1)]),
            pages: [(n(1), 64)].into_iter().collect(),
            sampled: 64,
            cache_misses: None,
        };
        let mut m = Machine::default();
        let r = rules(BalancePolicy::MoveThreads);
        m.step(&r, &spread, true, &AllOk);
        m.step(&r, &spread, true, &AllOk);
        assert!(matches!(
            m.step(&r, &spread, true, &AllOk),
            Step::Act { from: None, to, .. } if to == n(1)
        ));
        let mut m = Machine::default();
        let r = rules(BalancePolicy::MovePages);
        m.step(&r, &spread, true, &AllOk);
        m.step(&r, &spread, true, &AllOk);
        assert!(matches!(
            m.step(&r, &spread, true, &AllOk),
            Step::Skip { reason, .. } if reason.contains("pin them")
        ));
    }

    #[test]
    fn few_cache_misses_hold_back_where_counters_exist() {
        let mut remote = sample(0, &[(1, 64)]);
        remote.cache_misses = Some(10);
        let mut r = rules(BalancePolicy::MoveThreads);
        r.min_cache_misses = 1000;
        let mut m = Machine::default();
        m.step(&r, &remote, true, &AllOk);
        m.step(&r, &remote, true, &AllOk);
        assert!(matches!(
            m.step(&r, &remote, true, &AllOk),
            Step::Skip { .. }
        ));
        remote.cache_misses = Some(5000);
        assert!(matches!(
            m.step(&r, &remote, true, &AllOk),
            Step::Act { .. }
        ));
    }

    #[test]
    fn well_placed_and_empty_groups_stay_quiet() {
        let r = rules(BalancePolicy::MovePages);
        let mut m = Machine::default();
        for s in [
            sample(0, &[(0, 64)]),
            sample(0, &[]),
            Sample {
                threads: ThreadPlace::NoThreads,
                pages: [(n(1), 64)].into_iter().collect(),
                sampled: 64,
                cache_misses: None,
            },
        ] {
            for _ in 0..5 {
                assert_eq!(m.step(&r, &s, true, &AllOk), Step::Quiet);
            }
        }
    }
}
