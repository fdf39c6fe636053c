//! What `/ready` answers: ready means connected to the relay server with a valid, unexpired
//! client certificate; otherwise the first reason that stands in the way.
//!
//! Pure: [`readiness`] takes what the provider and the client report plus the time. The agent
//! re-evaluates it on every change and once a second (a certificate expires without any event).

use time::OffsetDateTime;

use relay_pki::format_time;

/// The facts about the current client certificate that readiness depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// Serial, colon-separated hex.
    pub serial: String,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
}

/// The relay connection as the gRPC client reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ConnectionStatus {
    /// Nothing attempted yet.
    #[default]
    Starting,
    /// An attempt is under way.
    Connecting,
    /// A `Connect` stream is established (Welcome received) with the certificate `serial`.
    Connected {
        /// The serial the server authenticated.
        serial: String,
    },
    /// Not connected; `reason` says why (the last error) and when the next attempt is.
    Disconnected {
        /// The last error, already worded for people.
        reason: String,
    },
}

/// Everything `/ready` depends on.
#[derive(Debug, Clone)]
pub struct ReadinessInputs<'a> {
    /// The provider's current certificate, if any was ever accepted.
    pub certificate: Option<&'a CertificateFacts>,
    /// `namespace/name` of the client certificate Secret, for messages.
    pub secret: &'a str,
    /// Whether a trust bundle is loaded.
    pub roots_loaded: bool,
    /// `namespace/name` of the root Secret, for messages.
    pub root_secret: &'a str,
    /// The connection.
    pub connection: &'a ConnectionStatus,
    /// Now.
    pub now: OffsetDateTime,
}

/// `Ok(())` when ready, else the reason (one line).
pub fn readiness(inputs: &ReadinessInputs<'_>) -> Result<(), String> {
    let Some(certificate) = inputs.certificate else {
        return Err(format!(
            "no valid client certificate yet in Secret {}",
            inputs.secret
        ));
    };
    if inputs.now >= certificate.not_after {
        return Err(format!(
            "client certificate serial {} expired at {}; waiting for a renewed certificate in Secret {}",
            certificate.serial,
            format_time(certificate.not_after),
            inputs.secret
        ));
    }
    if inputs.now < certificate.not_before {
        return Err(format!(
            "client certificate serial {} is not valid until {}",
            certificate.serial,
            format_time(certificate.not_before)
        ));
    }
    if !inputs.roots_loaded {
        return Err(format!(
            "no trust bundle yet in Secret {} (ca.crt) to verify the relay server",
            inputs.root_secret
        ));
    }
    match inputs.connection {
        ConnectionStatus::Connected { .. } => Ok(()),
        ConnectionStatus::Starting => Err("not connected to the relay server yet".to_string()),
        ConnectionStatus::Connecting => Err("connecting to the relay server".to_string()),
        ConnectionStatus::Disconnected { reason } => {
            Err(format!("not connected to the relay server: {reason}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::Duration;

    fn t(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_800_000_000 + seconds)
    }

    fn cert(not_before: i64, not_after: i64) -> CertificateFacts {
        CertificateFacts {
            serial: "01:02".into(),
            not_before: t(not_before),
            not_after: t(not_after),
        }
    }

    fn connected() -> ConnectionStatus {
        ConnectionStatus::Connected {
            serial: "01:02".into(),
        }
    }

    fn check(
        certificate: Option<&CertificateFacts>,
        roots: bool,
        connection: &ConnectionStatus,
        now: i64,
    ) -> Result<(), String> {
        readiness(&ReadinessInputs {
            certificate,
            secret: "gloo-mesh/relay-client-tls-secret",
            roots_loaded: roots,
            root_secret: "gloo-mesh/relay-root-tls-secret",
            connection,
            now: t(now),
        })
    }

    #[test]
    fn connected_with_a_valid_certificate_is_ready() {
        assert_eq!(check(Some(&cert(-10, 10)), true, &connected(), 0), Ok(()));
    }

    #[test]
    fn each_missing_piece_is_named() {
        let c = cert(-10, 10);
        let no_cert = check(None, true, &connected(), 0).unwrap_err();
        assert!(
            no_cert.contains("gloo-mesh/relay-client-tls-secret"),
            "{no_cert}"
        );
        let no_roots = check(Some(&c), false, &connected(), 0).unwrap_err();
        assert!(no_roots.contains("relay-root-tls-secret"), "{no_roots}");
        let starting = check(Some(&c), true, &ConnectionStatus::Starting, 0).unwrap_err();
        assert!(starting.contains("not connected"), "{starting}");
        let down = ConnectionStatus::Disconnected {
            reason: "connection refused; retrying in 2s".into(),
        };
        let down = check(Some(&c), true, &down, 0).unwrap_err();
        assert!(down.contains("connection refused"), "{down}");
    }

    #[test]
    fn an_expired_certificate_is_not_ready_even_while_connected() {
        let reason = check(Some(&cert(-10, 10)), true, &connected(), 10).unwrap_err();
        assert!(reason.contains("expired"), "{reason}");
        assert!(reason.contains("01:02"), "{reason}");
        let early = check(Some(&cert(5, 10)), true, &connected(), 0).unwrap_err();
        assert!(early.contains("not valid until"), "{early}");
    }

    proptest! {
        #[test]
        fn ready_exactly_when_connected_valid_and_trusted(
            not_before in -1000i64..1000,
            lifetime in 1i64..2000,
            now in -3000i64..3000,
            roots in any::<bool>(),
            state in 0u8..4,
        ) {
            let c = cert(not_before, not_before + lifetime);
            let connection = match state {
                0 => ConnectionStatus::Starting,
                1 => ConnectionStatus::Connecting,
                2 => ConnectionStatus::Disconnected { reason: "x".into() },
                _ => connected(),
            };
            let valid = now >= not_before && now < not_before + lifetime;
            let expected = valid && roots && state == 3;
            prop_assert_eq!(check(Some(&c), roots, &connection, now).is_ok(), expected);
            prop_assert!(check(None, roots, &connection, now).is_err());
        }
    }
}
