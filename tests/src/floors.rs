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
//! The bench prints this bound beside what the machine offers in the window (its CPUs times
//! storm + lag), so a run shows whether a missed floor is the code's or the machine's. Plain
//! arithmetic on measured figures, no process, clock or Kubernetes type, so that it is tested
//! on its own; the bench does the measuring.

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

/// The least work of a cold start within the floors' window, at the run's measured costs.
pub fn least_work(costs: &MeasuredCosts, window: &FloorWindow) -> CapacityBound {
    let sessions = costs.sessions.max(0.0);
    CapacityBound {
        offered: window.cpus.max(0.0) * (window.storm + window.lag).max(0.0),
        writes: sessions * costs.per_write.max(0.0),
        handshakes: sessions * costs.per_handshake.max(0.0),
        heartbeats: sessions * window.lag.max(0.0) * costs.heartbeats_per_session_second.max(0.0),
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

    fn costs() -> impl Strategy<Value = MeasuredCosts> {
        (0.0..1e6f64, 0.0..0.1f64, 0.0..0.1f64, 0.0..1e-3f64).prop_map(
            |(sessions, per_write, per_handshake, heartbeats_per_session_second)| MeasuredCosts {
                sessions,
                per_write,
                per_handshake,
                heartbeats_per_session_second,
            },
        )
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

    #[test]
    fn handshakes_are_what_the_heartbeats_leave_of_the_storm() {
        // 20 CPU-seconds in the storm; 100,000 session-seconds at 50 µs each are 5 of them.
        assert!((handshake_cpu(20.0, 100_000.0, 0.000_05) - 15.0).abs() < 1e-9);
        assert_eq!(handshake_cpu(1.0, 100_000.0, 0.000_05), 0.0);
        assert_eq!(handshake_cpu(3.0, -5.0, 0.1), 3.0);
    }
}
