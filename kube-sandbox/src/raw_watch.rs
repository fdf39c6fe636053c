//! A raw watch for tests that check the API server's wire format: the request is sent as is
//! (with the test's `Accept` header) and each newline-delimited event is read as JSON.
//!
//! These are test helpers: they panic with a message saying what was expected when the server
//! does not deliver it. Typed watches belong to kube's `watcher`, not here.

use http_body_util::BodyExt;
use serde_json::Value;
use std::time::Duration;

/// How long one event may take to arrive.
const EVENT_WAIT: Duration = Duration::from_secs(5);

/// An open watch response, read one event at a time.
pub struct RawWatch {
    body: kube::client::Body,
    buffer: Vec<u8>,
}

impl RawWatch {
    /// Sends `GET path` with `accept`; the response must be 200.
    pub async fn open(client: &kube::Client, path: &str, accept: &str) -> Self {
        let request = http::Request::get(path)
            .header(http::header::ACCEPT, accept)
            .body(kube::client::Body::empty())
            .unwrap_or_else(|e| panic!("cannot build the watch request for {path}: {e}"));
        let response = client
            .send(request)
            .await
            .unwrap_or_else(|e| panic!("watch {path} failed: {e}"));
        assert_eq!(response.status().as_u16(), 200, "watch {path}");
        Self {
            body: response.into_body(),
            buffer: Vec::new(),
        }
    }

    /// The next event, or `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).unwrap_or_else(|e| {
                    panic!(
                        "a watch event that is not JSON ({e}): {}",
                        String::from_utf8_lossy(&line)
                    )
                }));
            }
            let frame = tokio::time::timeout(EVENT_WAIT, self.body.frame())
                .await
                .expect("a watch event within 5s")?
                .unwrap_or_else(|e| panic!("the watch stream failed: {e}"));
            if let Ok(data) = frame.into_data() {
                self.buffer.extend_from_slice(&data);
            }
        }
    }

    /// The next event that is not a BOOKMARK; the stream must still be open.
    pub async fn next_change(&mut self) -> Value {
        loop {
            let event = self.next().await.expect("the watch is still open");
            if event["type"] != "BOOKMARK" {
                return event;
            }
        }
    }
}
