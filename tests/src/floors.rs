//! What the fleet floors ask of a machine, from a run's measured costs (`make bench-relay`).
//!
//! The floors of the fleet benchmark put every agent's Welcome within the storm bound (90 s)
//! and every RelayCluster shown connected within the lag bound (60 s) of its Welcome, so all
//! of a cold start's work has to fit in the first storm + lag seconds. Whatever the scheduler,
//! that work is at least:
//! - every status write, at the control plane's CPU per write;
//! - every handshake, both sides (relay replica and agent), with Hello, Welcome and the
//!   replica's request for the status claim;
//! - every session's heartbeats from its Welcome, at the latest at the storm bound, to the end
//!   of the window: the lag bound's seconds each, at the steady rate.
//!
//! That bound ignores that a status write cannot come before its Welcome nor more than the lag
//! bound after it. [`least_cpus`] keeps both: the fewest CPUs with which any schedule of the
//! same work meets the floors, from a linear program over one-second slots (Welcomes and writes
//! per slot, each write within the lag bound of its Welcome, every open session's heartbeats,
//! the CPU of each slot at most the answer), solved with `microlp`. The slots make it a
//! relaxation of the real, continuous schedule, so the answer stays a lower bound: a session
//! welcomed during a slot costs heartbeats only from the next one, and its write may fall in the
//! same slot.
//!
//! The bench prints both beside what the machine offers (its CPUs), so a run shows whether a
//! missed floor is the code's or the machine's. Plain functions of measured figures, with no
//! process, clock or Kubernetes type, so that they are tested on their own; the bench does the
//! measuring.

use microlp::{ComparisonOp, OptimizationDirection, Problem, SolutionStatus, SolveOutcome};

/// What one run measured, in CPU-seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasuredCosts {
    /// Agent sessions (one status write each at least).
    pub sessions: f64,
    /// The control plane's CPU per status write (API server and its store).
    pub per_write: f64,
    /// One session opened, both sides together: the handshake, Hello and Welcome, and the
    /// replica's request for the status claim.
    pub per_handshake: f64,
    /// One open session's heartbeats per second, both sides together.
    pub heartbeats_per_session_second: f64,
}

/// The floors' window and the machine it runs on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloorWindow {
    /// Every Welcome within this many seconds of the storm's start.
    pub storm: f64,
    /// Every RelayCluster shown within this many seconds of its Welcome.
    pub lag: f64,
    /// CPUs of the machine.
    pub cpus: f64,
}

/// The least CPU-seconds the floors' window needs, by kind, and what the machine offers in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityBound {
    pub offered: f64,
    pub writes: f64,
    pub handshakes: f64,
    pub heartbeats: f64,
}

impl CapacityBound {
    /// All the work the window must hold.
    pub fn needed(&self) -> f64 {
        self.writes + self.handshakes + self.heartbeats
    }

    /// The needed work as a share of what the machine offers (1.0: every CPU busy for the whole
    /// window, with a perfect scheduler).
    pub fn share(&self) -> f64 {
        if self.offered > 0.0 {
            self.needed() / self.offered
        } else {
            f64::INFINITY
        }
    }
}

/// The whole fleet's work at `costs`, in CPU-seconds: all its status writes, all its openings,
/// and its heartbeats per second with every session open. A negative measurement counts as
/// none.
struct FleetWork {
    writes: f64,
    openings: f64,
    heartbeats_per_second: f64,
}

impl FleetWork {
    fn of(costs: &MeasuredCosts) -> Self {
        let sessions = costs.sessions.max(0.0);
        Self {
            writes: sessions * costs.per_write.max(0.0),
            openings: sessions * costs.per_handshake.max(0.0),
            heartbeats_per_second: sessions * costs.heartbeats_per_session_second.max(0.0),
        }
    }
}

/// The least work of a cold start within the floors' window, at the run's measured costs.
pub fn least_work(costs: &MeasuredCosts, window: &FloorWindow) -> CapacityBound {
    let fleet = FleetWork::of(costs);
    CapacityBound {
        offered: window.cpus.max(0.0) * (window.storm + window.lag).max(0.0),
        writes: fleet.writes,
        handshakes: fleet.openings,
        heartbeats: fleet.heartbeats_per_second * window.lag.max(0.0),
    }
}

/// The handshakes' share of the CPU that the replicas and agents used from the storm's start
/// until every RelayCluster was shown: that CPU less the heartbeats of the sessions open
/// meanwhile (`session_seconds`, the sum over sessions of their time open in that span) at the
/// steady rate. Never below zero.
pub fn handshake_cpu(
    storm_cpu: f64,
    session_seconds: f64,
    heartbeats_per_session_second: f64,
) -> f64 {
    (storm_cpu - session_seconds.max(0.0) * heartbeats_per_session_second.max(0.0)).max(0.0)
}

/// The fewest CPUs with which any schedule of a cold start meets both floors at `costs`, with
/// `constant_load` CPUs busy throughout besides (the machine's other work): the optimum of the
/// linear program the module's doc describes, over slots of one second. `None` when the solver
/// does not prove an optimum (the bench then says so).
pub fn least_cpus(costs: &MeasuredCosts, window: &FloorWindow, constant_load: f64) -> Option<f64> {
    const SLOT: f64 = 1.0;
    let slots = ((window.storm + window.lag) / SLOT).round().max(1.0) as usize;
    let storm_slots = ((window.storm / SLOT).round() as usize).clamp(1, slots);
    let lag_slots = (window.lag / SLOT).round().max(0.0) as usize;
    // Welcomes and writes as fractions of all sessions, so that the coefficients are CPU-seconds
    // for the whole fleet (well within what the solver handles well).
    let fleet = FleetWork::of(costs);
    let (write, opening) = (fleet.writes, fleet.openings);
    let heartbeats_per_slot = fleet.heartbeats_per_second * SLOT;
    let mut problem = Problem::new(OptimizationDirection::Minimize);
    let cpus = problem.add_var(1.0, (0.0, f64::INFINITY));
    // welcomed[k], written[k]: the share of sessions with a Welcome, with a status written, by
    // the end of slot k. Every Welcome comes within the storm bound, every write by the end.
    let welcomed: Vec<_> = (0..slots)
        .map(|k| {
            let all = k + 1 >= storm_slots;
            problem.add_var(0.0, (if all { 1.0 } else { 0.0 }, 1.0))
        })
        .collect();
    let written: Vec<_> = (0..slots)
        .map(|k| problem.add_var(0.0, (if k + 1 == slots { 1.0 } else { 0.0 }, 1.0)))
        .collect();
    for k in 0..slots {
        // The CPU of slot k: its writes and openings, the heartbeats of the sessions open since
        // before it, and the constant load, within `cpus` for the slot's length.
        let mut slot_cpu = vec![(written[k], write), (welcomed[k], opening), (cpus, -SLOT)];
        if k > 0 {
            slot_cpu.push((written[k - 1], -write));
            slot_cpu.push((welcomed[k - 1], heartbeats_per_slot - opening));
            problem.add_constraint(
                [(welcomed[k - 1], 1.0), (welcomed[k], -1.0)],
                ComparisonOp::Le,
                0.0,
            );
            problem.add_constraint(
                [(written[k - 1], 1.0), (written[k], -1.0)],
                ComparisonOp::Le,
                0.0,
            );
        }
        problem.add_constraint(slot_cpu, ComparisonOp::Le, -constant_load.max(0.0) * SLOT);
        // No write before its Welcome; none later than the lag bound after it.
        problem.add_constraint(
            [(written[k], 1.0), (welcomed[k], -1.0)],
            ComparisonOp::Le,
            0.0,
        );
        if k >= lag_slots {
            problem.add_constraint(
                [(welcomed[k - lag_slots], 1.0), (written[k], -1.0)],
                ComparisonOp::Le,
                0.0,
            );
        }
    }
    match problem.solve() {
        Ok(SolveOutcome::Solution(solution)) if solution.status() == SolutionStatus::Optimal => {
            Some(solution.objective())
        }
        Ok(_) | Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FLOORS: FloorWindow = FloorWindow {
        storm: 90.0,
        lag: 60.0,
        cpus: 2.0,
    };

    #[test]
    fn the_window_offers_its_cpus_for_storm_and_lag() {
        let bound = least_work(
            &MeasuredCosts {
                sessions: 0.0,
                per_write: 0.003,
                per_handshake: 0.001,
                heartbeats_per_session_second: 0.000_015,
            },
            &FLOORS,
        );
        assert_eq!(bound.offered, 300.0);
        assert_eq!(bound.needed(), 0.0);
        assert_eq!(bound.share(), 0.0);
    }

    #[test]
    fn each_kind_of_work_grows_with_the_sessions() {
        // 45,000 sessions at 3.76 ms a write, 1 ms a handshake and 150 µs a heartbeat every
        // 10 s (15 µs per session-second): 169.2 + 45 + 40.5 CPU-seconds.
        let bound = least_work(
            &MeasuredCosts {
                sessions: 45_000.0,
                per_write: 0.003_76,
                per_handshake: 0.001,
                heartbeats_per_session_second: 0.000_015,
            },
            &FLOORS,
        );
        assert!((bound.writes - 169.2).abs() < 1e-9);
        assert!((bound.handshakes - 45.0).abs() < 1e-9);
        assert!((bound.heartbeats - 40.5).abs() < 1e-9);
        assert!((bound.needed() - 254.7).abs() < 1e-9);
        assert!((bound.share() - 0.849).abs() < 1e-9);
    }

    #[test]
    fn heartbeats_count_only_the_lag_bound_per_session() {
        let costs = MeasuredCosts {
            sessions: 1_000.0,
            per_write: 0.0,
            per_handshake: 0.0,
            heartbeats_per_session_second: 0.001,
        };
        let short = least_work(
            &costs,
            &FloorWindow {
                lag: 10.0,
                ..FLOORS
            },
        );
        let long = least_work(
            &costs,
            &FloorWindow {
                lag: 20.0,
                ..FLOORS
            },
        );
        assert_eq!(short.heartbeats, 10.0);
        assert_eq!(long.heartbeats, 20.0);
    }

    #[test]
    fn a_machine_with_no_cpu_offers_nothing() {
        let bound = least_work(
            &MeasuredCosts {
                sessions: 1.0,
                per_write: 1.0,
                per_handshake: 0.0,
                heartbeats_per_session_second: 0.0,
            },
            &FloorWindow {
                cpus: 0.0,
                ..FLOORS
            },
        );
        assert_eq!(bound.offered, 0.0);
        assert!(bound.share().is_infinite());
    }

    #[test]
    fn negative_measurements_count_as_none() {
        let bound = least_work(
            &MeasuredCosts {
                sessions: 10.0,
                per_write: -1.0,
                per_handshake: -1.0,
                heartbeats_per_session_second: -1.0,
            },
            &FLOORS,
        );
        assert_eq!(bound.needed(), 0.0);
    }

    /// Costs up to `scale` times those of a 100,000-session fleet at 10 ms a write or opening
    /// and 100 µs per session-second.
    fn costs_up_to(scale: f64) -> impl Strategy<Value = MeasuredCosts> {
        (
            0.0..1e5 * scale,
            0.0..0.01 * scale,
            0.0..0.01 * scale,
            0.0..1e-4 * scale,
        )
            .prop_map(
                |(sessions, per_write, per_handshake, heartbeats_per_session_second)| {
                    MeasuredCosts {
                        sessions,
                        per_write,
                        per_handshake,
                        heartbeats_per_session_second,
                    }
                },
            )
    }

    fn costs() -> impl Strategy<Value = MeasuredCosts> {
        costs_up_to(10.0)
    }

    proptest! {
        #[test]
        fn more_of_any_cost_never_needs_less(costs in costs(), more in 0.0..10.0f64) {
            let base = least_work(&costs, &FLOORS).needed();
            for dearer in [
                MeasuredCosts { sessions: costs.sessions + more, ..costs },
                MeasuredCosts { per_write: costs.per_write + more, ..costs },
                MeasuredCosts { per_handshake: costs.per_handshake + more, ..costs },
                MeasuredCosts {
                    heartbeats_per_session_second: costs.heartbeats_per_session_second + more,
                    ..costs
                },
            ] {
                prop_assert!(least_work(&dearer, &FLOORS).needed() >= base);
            }
        }

        #[test]
        fn the_share_is_the_need_over_the_offer(costs in costs(), cpus in 1.0..64.0f64) {
            let window = FloorWindow { cpus, ..FLOORS };
            let bound = least_work(&costs, &window);
            prop_assert_eq!(bound.offered, cpus * 150.0);
            prop_assert!(bound.needed() >= 0.0);
            prop_assert_eq!(bound.share() <= 1.0, bound.needed() <= bound.offered);
        }

        #[test]
        fn the_handshakes_never_exceed_the_storm_nor_go_below_zero(
            storm in 0.0..1e4f64,
            session_seconds in -1e6..1e8f64,
            rate in 0.0..1e-3f64,
        ) {
            let handshakes = handshake_cpu(storm, session_seconds, rate);
            prop_assert!((0.0..=storm).contains(&handshakes));
        }
    }

    fn run_56() -> MeasuredCosts {
        MeasuredCosts {
            sessions: 45_000.0,
            per_write: 0.003_76,
            per_handshake: 0.001_29,
            heartbeats_per_session_second: 0.000_017_8,
        }
    }

    fn assert_close(got: Option<f64>, want: f64) {
        let got = got.expect("the linear program has an optimum");
        assert!((got - want).abs() < 5e-4, "{got} CPUs, expected {want}");
    }

    /// The expected figures are the optimum of the same program solved by HiGHS (SciPy's
    /// `linprog`), not by this code.
    #[test]
    fn the_least_cpus_match_an_independent_solver() {
        assert_close(least_cpus(&run_56(), &FLOORS, 0.052), 2.0745);
        assert_close(least_cpus(&run_56(), &FLOORS, 0.0), 2.0225);
        assert_close(
            least_cpus(
                &MeasuredCosts {
                    sessions: 15_000.0,
                    ..run_56()
                },
                &FLOORS,
                0.052,
            ),
            0.7262,
        );
        assert_close(
            least_cpus(
                &MeasuredCosts {
                    sessions: 45_000.0,
                    per_write: 0.002_2,
                    per_handshake: 0.000_9,
                    heartbeats_per_session_second: 0.000_013_5,
                },
                &FLOORS,
                0.05,
            ),
            1.3713,
        );
        assert_close(
            least_cpus(
                &MeasuredCosts {
                    sessions: 45_000.0,
                    per_write: 0.001,
                    per_handshake: 0.001,
                    heartbeats_per_session_second: 0.000_01,
                },
                &FLOORS,
                0.0,
            ),
            0.9058,
        );
    }

    #[test]
    fn writes_alone_spread_over_the_whole_window() {
        // Welcomes cost nothing, so writes can run from the first second to the last: 169.2
        // CPU-seconds over 150 s.
        let writes_only = MeasuredCosts {
            per_handshake: 0.0,
            heartbeats_per_session_second: 0.0,
            ..run_56()
        };
        assert_close(least_cpus(&writes_only, &FLOORS, 0.0), 1.128);
        assert_close(least_cpus(&writes_only, &FLOORS, 0.25), 1.378);
    }

    #[test]
    fn no_work_needs_no_cpu() {
        let nothing = MeasuredCosts {
            sessions: 0.0,
            ..run_56()
        };
        assert_close(least_cpus(&nothing, &FLOORS, 0.0), 0.0);
    }

    /// Fleets and costs of the sizes the bench measures.
    fn fleet_costs() -> impl Strategy<Value = MeasuredCosts> {
        costs_up_to(1.0)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn no_schedule_beats_the_total_work(costs in fleet_costs()) {
            let cpus = least_cpus(&costs, &FLOORS, 0.0);
            prop_assert!(cpus.is_some());
            let total = least_work(&costs, &FLOORS).needed() / 150.0;
            prop_assert!(cpus.unwrap_or(0.0) >= total - 1e-6 * (1.0 + total));
        }

        #[test]
        fn dearer_writes_never_need_fewer_cpus(costs in fleet_costs(), more in 0.0..0.01f64) {
            let cheap = least_cpus(&costs, &FLOORS, 0.0).unwrap_or(f64::NAN);
            let dear = least_cpus(
                &MeasuredCosts { per_write: costs.per_write + more, ..costs },
                &FLOORS,
                0.0,
            )
            .unwrap_or(f64::NAN);
            prop_assert!(dear >= cheap - 1e-6 * (1.0 + cheap));
        }
    }

    #[test]
    fn handshakes_are_what_the_heartbeats_leave_of_the_storm() {
        // 20 CPU-seconds in the storm; 100,000 session-seconds at 50 µs each are 5 of them.
        assert!((handshake_cpu(20.0, 100_000.0, 0.000_05) - 15.0).abs() < 1e-9);
        assert_eq!(handshake_cpu(1.0, 100_000.0, 0.000_05), 0.0);
        assert_eq!(handshake_cpu(3.0, -5.0, 0.1), 3.0);
    }
}
