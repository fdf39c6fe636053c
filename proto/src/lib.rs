//! relay-proto: the relay gRPC API, generated from `proto/relay.proto`.
//!
//! - [`v1::relay_certificates_server`] / [`v1::relay_certificates_client`]:
//!   `RelayCertificates.SignCertificate`, which signs agent client certificates (bootstrap token
//!   or renewal by mTLS).
//! - [`v1::relay_server`] / [`v1::relay_client`]: `Relay.Connect`, the agent's long-lived
//!   stream (hello, welcome, heartbeats both ways).
//!
//! Only generated code and the message helpers below live here; authentication, signing and
//! connection handling live in `relay-issuer` (server) and `relay-agent` (client).

#![forbid(unsafe_code)]

pub mod codec;

/// Version 1 of the relay API (`package relay.v1`).
pub mod v1 {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("relay.v1");
}

pub use v1::{
    AgentMessage, Heartbeat, Hello, ServerMessage, SignCertificateRequest, SignCertificateResponse,
    Welcome, agent_message, server_message,
};

impl AgentMessage {
    /// The agent's first message on a `Connect` stream.
    pub fn hello(hello: Hello) -> Self {
        Self {
            message: Some(agent_message::Message::Hello(hello)),
        }
    }

    /// An agent heartbeat.
    pub fn heartbeat(sequence: u64, sent_unix_millis: i64) -> Self {
        Self {
            message: Some(agent_message::Message::Heartbeat(Heartbeat {
                sequence,
                sent_unix_millis,
            })),
        }
    }
}

impl ServerMessage {
    /// The server's answer to `Hello`.
    pub fn welcome(welcome: Welcome) -> Self {
        Self {
            message: Some(server_message::Message::Welcome(welcome)),
        }
    }

    /// A server heartbeat (the echo of the agent's sequence number).
    pub fn heartbeat(sequence: u64, sent_unix_millis: i64) -> Self {
        Self {
            message: Some(server_message::Message::Heartbeat(Heartbeat {
                sequence,
                sent_unix_millis,
            })),
        }
    }
}
