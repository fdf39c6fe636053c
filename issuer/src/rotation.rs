//! The staged root rotation of `relay-issuer ca rotate`, as a plain function of what the
//! cluster(s) hold: which stage the rotation from root A to root B is at, what the next stage
//! changes, and who would be cut off by advancing.
//!
//! The stages (each idempotent; the stage is read back from the cluster every time, so a
//! rotation can be resumed from anywhere):
//! 1. **Trust B**: every trust bundle (`relay-root-tls-secret`, the server's and the agents')
//!    holds B beside A.
//! 2. **Sign with B**: every signing Secret (`relay-tls-signing-secret`) holds an intermediate
//!    under B.
//! 3. **Agents on B**: every RelayCluster's certificate chains to B (`status.certificateRoot`);
//!    agents still on A are renewed through cert-manager (their Certificate's Issuing
//!    condition, what `cmctl renew` sets).
//! 4. **Serve with B**: the relay server's certificate (`relay-server-tls-secret`) chains to B.
//! 5. **Forget A**: A leaves every trust bundle; refused while any RelayCluster's certificate
//!    still chains to A or is unknown (it would be cut off), naming them.
//!
//! No Kubernetes type here: the command (`cli::rotate`) reads the Secrets and RelayClusters
//! into [`Observed`] and carries out [`Plan::changes`].

use std::fmt;

/// A Secret, by namespace and name (and the cluster it lives in, for several kubeconfigs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretRef {
    /// Which cluster (kubeconfig context) it is in; empty for the server's own.
    pub cluster: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cluster.is_empty() {
            write!(f, "{}/{}", self.namespace, self.name)
        } else {
            write!(f, "{}:{}/{}", self.cluster, self.namespace, self.name)
        }
    }
}

/// One RelayCluster as the rotation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSeen {
    /// The cluster's name.
    pub name: String,
    /// The fingerprint of the root its last certificate chains to (`status.certificateRoot`);
    /// `None` when the server has not seen a certificate of it yet.
    pub root: Option<String>,
    /// Whether an agent is connected now.
    pub connected: bool,
}

/// What the rotation reads, as fingerprints (`relay_pki::anchor::fingerprint`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Every trust bundle and the roots it holds.
    pub bundles: Vec<(SecretRef, Vec<String>)>,
    /// Every signing Secret and the root its intermediate chains to (`None`: unreadable, or
    /// under neither A nor B).
    pub signers: Vec<(SecretRef, Option<String>)>,
    /// The relay server's certificate Secret and the root it chains to.
    pub server: Option<(SecretRef, Option<String>)>,
    /// Every RelayCluster.
    pub clusters: Vec<ClusterSeen>,
}

/// The stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// 1: B joins every trust bundle.
    TrustNewRoot,
    /// 2: every signing Secret moves to an intermediate under B.
    SignWithNewRoot,
    /// 3: every agent's certificate moves to B.
    RenewAgents,
    /// 4: the relay server's certificate moves to B.
    ServeWithNewRoot,
    /// 5: A leaves every trust bundle.
    ForgetOldRoot,
}

impl Stage {
    /// Its number and what it does, for the command's output and messages.
    pub fn title(self) -> &'static str {
        match self {
            Stage::TrustNewRoot => "stage 1/5: add the new root to every trust bundle",
            Stage::SignWithNewRoot => "stage 2/5: sign with an intermediate under the new root",
            Stage::RenewAgents => "stage 3/5: renew every agent certificate under the new root",
            Stage::ServeWithNewRoot => {
                "stage 4/5: serve the relay with a certificate under the new root"
            }
            Stage::ForgetOldRoot => "stage 5/5: remove the old root from every trust bundle",
        }
    }
}

/// One change the next stage makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add the new root to this trust bundle.
    AddRoot(SecretRef),
    /// Replace this signing Secret's intermediate with one under the new root.
    ReplaceSigner(SecretRef),
    /// Renew the agent certificate of this cluster (through cert-manager).
    RenewAgent(String),
    /// Replace the server certificate with one under the new root (same names).
    ReplaceServerCertificate(SecretRef),
    /// Remove the old root from this trust bundle.
    RemoveRoot(SecretRef),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::AddRoot(s) => write!(f, "add the new root to trust bundle {s}"),
            Change::ReplaceSigner(s) => {
                write!(
                    f,
                    "replace signing Secret {s} with an intermediate under the new root"
                )
            }
            Change::RenewAgent(c) => write!(f, "renew the agent certificate of cluster {c}"),
            Change::ReplaceServerCertificate(s) => {
                write!(
                    f,
                    "replace the relay server certificate in {s} with one under the new root"
                )
            }
            Change::RemoveRoot(s) => write!(f, "remove the old root from trust bundle {s}"),
        }
    }
}

/// One stage that is not complete yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The stage.
    pub stage: Stage,
    /// What completing it changes.
    pub changes: Vec<Change>,
    /// Why it must not be carried out now (each line names what is in the way and what to
    /// do); empty when it may.
    pub blocked: Vec<String>,
}

/// The stages of the rotation from root `old` to root `new` (fingerprints) that are not
/// complete, in order, given what is `observed`. Empty: the rotation is done.
///
/// Stages 1, 2 and 4 cut no one off while both roots are trusted, and stage 3 only asks agents
/// to renew (one that cannot, say a bring-your-own Secret nobody replaces, stays on the old
/// root and keeps working); so only stage 5 can break a connection, and it is blocked while any
/// RelayCluster's certificate does not chain to the new root, or while an earlier stage other
/// than 3 is incomplete.
pub fn plan(observed: &Observed, old: &str, new: &str) -> Vec<Plan> {
    let stage = |stage, changes: Vec<Change>| Plan {
        stage,
        changes,
        blocked: Vec::new(),
    };
    let mut plans = vec![
        stage(
            Stage::TrustNewRoot,
            observed
                .bundles
                .iter()
                .filter(|(_, roots)| !roots.iter().any(|r| r == new))
                .map(|(secret, _)| Change::AddRoot(secret.clone()))
                .collect(),
        ),
        stage(
            Stage::SignWithNewRoot,
            observed
                .signers
                .iter()
                .filter(|(_, root)| root.as_deref() != Some(new))
                .map(|(secret, _)| Change::ReplaceSigner(secret.clone()))
                .collect(),
        ),
        stage(
            Stage::RenewAgents,
            observed
                .clusters
                .iter()
                .filter(|c| c.root.as_deref() != Some(new))
                .map(|c| Change::RenewAgent(c.name.clone()))
                .collect(),
        ),
        stage(
            Stage::ServeWithNewRoot,
            observed
                .server
                .iter()
                .filter(|(_, root)| root.as_deref() != Some(new))
                .map(|(secret, _)| Change::ReplaceServerCertificate(secret.clone()))
                .collect(),
        ),
        stage(
            Stage::ForgetOldRoot,
            observed
                .bundles
                .iter()
                .filter(|(_, roots)| roots.iter().any(|r| r == old))
                .map(|(secret, _)| Change::RemoveRoot(secret.clone()))
                .collect(),
        ),
    ];
    plans.retain(|p| !p.changes.is_empty());
    let earlier: Vec<String> = plans
        .iter()
        .filter(|p| !matches!(p.stage, Stage::RenewAgents | Stage::ForgetOldRoot))
        .map(|p| format!("{} is not complete", p.stage.title()))
        .collect();
    if let Some(last) = plans.last_mut()
        && last.stage == Stage::ForgetOldRoot
    {
        last.blocked = earlier;
        last.blocked.extend(cut_off(observed, new));
    }
    plans
}

/// The clusters whose agents would be cut off once the old root is gone, each named with why
/// and what to do.
fn cut_off(observed: &Observed, new: &str) -> Vec<String> {
    observed
        .clusters
        .iter()
        .filter(|c| c.root.as_deref() != Some(new))
        .map(|c| match &c.root {
            Some(root) => format!(
                "cluster {:?} ({}) last connected with a certificate under root {}; renew its agent certificate (cert-manager: cmctl renew; bring-your-own: replace its relay-client-tls-secret) before the old root goes",
                c.name,
                if c.connected { "connected" } else { "not connected" },
                short(root)
            ),
            None => format!(
                "cluster {:?} has never connected, so the root of its certificate is unknown; connect its agent with a certificate under the new root, or delete the RelayCluster",
                c.name
            ),
        })
        .collect()
}

/// The first 16 hex digits of a fingerprint, for messages.
pub fn short(fingerprint: &str) -> &str {
    fingerprint.get(..16).unwrap_or(fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn secret(namespace: &str, name: &str) -> SecretRef {
        SecretRef {
            cluster: String::new(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn cluster(name: &str, root: Option<&str>) -> ClusterSeen {
        ClusterSeen {
            name: name.into(),
            root: root.map(str::to_string),
            connected: true,
        }
    }

    /// Before the rotation: everything on A, two agent namespaces.
    fn on_a() -> Observed {
        let bundle = |ns: &str| (secret(ns, "relay-root-tls-secret"), vec![A.to_string()]);
        Observed {
            bundles: vec![bundle("gloo-mesh"), bundle("team-a"), bundle("team-b")],
            signers: vec![
                (
                    secret("gloo-mesh", "relay-tls-signing-secret"),
                    Some(A.into()),
                ),
                (secret("team-a", "relay-tls-signing-secret"), Some(A.into())),
            ],
            server: Some((
                secret("gloo-mesh", "relay-server-tls-secret"),
                Some(A.into()),
            )),
            clusters: vec![cluster("one", Some(A)), cluster("two", Some(A))],
        }
    }

    /// Carries out a plan's changes on `observed` as the command would (agents renew at once).
    fn apply(observed: &mut Observed, plan: &Plan) {
        for change in &plan.changes {
            match change {
                Change::AddRoot(s) => {
                    for (secret, roots) in &mut observed.bundles {
                        if secret == s {
                            roots.push(B.into());
                        }
                    }
                }
                Change::ReplaceSigner(s) => {
                    for (secret, root) in &mut observed.signers {
                        if secret == s {
                            *root = Some(B.into());
                        }
                    }
                }
                Change::RenewAgent(name) => {
                    for c in &mut observed.clusters {
                        if &c.name == name {
                            c.root = Some(B.into());
                        }
                    }
                }
                Change::ReplaceServerCertificate(_) => {
                    if let Some((_, root)) = &mut observed.server {
                        *root = Some(B.into());
                    }
                }
                Change::RemoveRoot(s) => {
                    for (secret, roots) in &mut observed.bundles {
                        if secret == s {
                            roots.retain(|r| r != A);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_stages_run_in_order_and_each_is_complete_once_applied() {
        let mut observed = on_a();
        let mut seen = Vec::new();
        loop {
            let plans = plan(&observed, A, B);
            let Some(next) = plans.first() else { break };
            assert!(next.blocked.is_empty(), "{next:?}");
            seen.push(next.stage);
            apply(&mut observed, next);
            // Complete once applied: the same stage is never planned again.
            assert!(
                plan(&observed, A, B).iter().all(|p| p.stage != next.stage),
                "{next:?}"
            );
        }
        assert_eq!(
            seen,
            [
                Stage::TrustNewRoot,
                Stage::SignWithNewRoot,
                Stage::RenewAgents,
                Stage::ServeWithNewRoot,
                Stage::ForgetOldRoot,
            ]
        );
        assert!(observed.bundles.iter().all(|(_, roots)| roots == &[B]));
    }

    #[test]
    fn a_stage_is_read_back_from_the_cluster_so_a_rotation_resumes_anywhere() {
        let mut observed = on_a();
        for (_, roots) in &mut observed.bundles {
            roots.push(B.into());
        }
        observed.signers[0].1 = Some(B.into());
        let resumed = plan(&observed, A, B);
        assert_eq!(resumed[0].stage, Stage::SignWithNewRoot);
        assert_eq!(
            resumed[0].changes,
            [Change::ReplaceSigner(secret(
                "team-a",
                "relay-tls-signing-secret"
            ))]
        );
        // Forgetting A waits for the signers and the server, and for every agent.
        let last = resumed.last().unwrap();
        assert_eq!(last.stage, Stage::ForgetOldRoot);
        assert_eq!(last.blocked.len(), 2 + 2, "{:?}", last.blocked);
        assert!(last.blocked[0].contains("stage 2/5"), "{:?}", last.blocked);
        assert!(last.blocked[1].contains("stage 4/5"), "{:?}", last.blocked);
    }

    #[test]
    fn forgetting_the_old_root_is_refused_naming_every_cluster_it_would_cut_off() {
        let mut observed = on_a();
        for (_, roots) in &mut observed.bundles {
            roots.push(B.into());
        }
        for (_, root) in &mut observed.signers {
            *root = Some(B.into());
        }
        observed.server.as_mut().unwrap().1 = Some(B.into());
        observed.clusters = vec![
            cluster("fresh", Some(B)),
            ClusterSeen {
                connected: false,
                ..cluster("stale", Some(A))
            },
            cluster("never", None),
        ];
        let plans = plan(&observed, A, B);
        let stages: Vec<Stage> = plans.iter().map(|p| p.stage).collect();
        assert_eq!(stages, [Stage::RenewAgents, Stage::ForgetOldRoot]);
        assert_eq!(
            plans[0].changes,
            [
                Change::RenewAgent("stale".into()),
                Change::RenewAgent("never".into())
            ]
        );
        // Renewal only asks; an agent that does not renew blocks stage 5, by name.
        let blocked = &plans[1].blocked;
        assert_eq!(blocked.len(), 2, "{blocked:?}");
        assert!(
            blocked[0].contains("\"stale\"")
                && blocked[0].contains("not connected")
                && blocked[0].contains(short(A))
                && blocked[0].contains("cmctl renew"),
            "{blocked:?}"
        );
        assert!(blocked[1].contains("\"never\"") && blocked[1].contains("never connected"));
        // Once they are on B, nothing is in the way.
        for c in &mut observed.clusters {
            c.root = Some(B.into());
        }
        let plans = plan(&observed, A, B);
        assert_eq!(plans.len(), 1);
        assert!(plans[0].blocked.is_empty(), "{:?}", plans[0].blocked);
    }

    #[test]
    fn secrets_name_their_cluster_when_there_are_several() {
        let local = secret("ns", "s");
        assert_eq!(local.to_string(), "ns/s");
        let remote = SecretRef {
            cluster: "workload-1".into(),
            ..local
        };
        assert_eq!(remote.to_string(), "workload-1:ns/s");
    }
}
