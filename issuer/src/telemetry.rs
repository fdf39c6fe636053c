//! Logging set-up: `--log-format plain|json` (being written).
