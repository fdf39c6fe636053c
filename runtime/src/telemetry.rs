//! Logging set-up: `--log-format plain|json` and `--log-level` (an `EnvFilter` directive), written
//! to stderr.
//!
//! What does not live here: metrics (each subsystem registers its own; `admin` serves them) and
//! what gets logged (the code that logs decides, with `tracing` spans and events).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::Error;

/// How log lines look.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, coloured when stderr is a terminal.
    #[default]
    Plain,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The logging flags.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// Log line format: `plain` for people, `json` for log collectors.
    #[arg(
        long = "log-format",
        env = "RELAY_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Plain
    )]
    pub log_format: LogFormat,
    /// What to log, as `tracing` EnvFilter directives: a level (`error`, `warn`, `info`, `debug`,
    /// `trace`, `off`) or a list such as `info,relay_issuer=debug,kube=warn`.
    #[arg(long = "log-level", env = "RELAY_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Plain,
            log_level: "info".to_string(),
        }
    }
}

/// Parses `--log-level` into a filter, or says what is wrong with it.
pub fn parse_filter(directives: &str) -> Result<EnvFilter, Error> {
    if directives.trim().is_empty() {
        return Err(Error::InvalidArgument(
            "--log-level is empty; give a level such as info, or directives such as info,relay_issuer=debug".to_string(),
        ));
    }
    EnvFilter::builder().parse(directives).map_err(|error| {
        Error::InvalidArgument(format!(
            "--log-level {directives:?} is not a valid filter ({error}); give a level (error, warn, info, debug, trace, off) or comma-separated target=level directives such as info,relay_issuer=debug,kube=warn"
        ))
    })
}

/// Installs the process-wide `tracing` subscriber writing to stderr as `options` say.
///
/// An invalid `--log-level` is an error. If a subscriber is already installed (a second call, or
/// a test harness that installed its own) this changes nothing and returns `Ok`.
pub fn init_logging(options: &LogOptions) -> Result<(), Error> {
    let filter = parse_filter(&options.log_level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match options.log_format {
        LogFormat::Plain => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    if let Err(error) = installed {
        tracing::debug!(%error, "a tracing subscriber is already installed; keeping it");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        log: LogOptions,
    }

    #[test]
    fn defaults_are_plain_and_info() {
        let cli = Cli::try_parse_from(["relay-issuer"]).unwrap();
        assert_eq!(cli.log, LogOptions::default());
        assert_eq!(cli.log.log_format, LogFormat::Plain);
        assert_eq!(cli.log.log_level, "info");
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "relay-issuer",
            "--log-format",
            "json",
            "--log-level",
            "warn,relay_issuer=trace",
        ])
        .unwrap();
        assert_eq!(cli.log.log_format, LogFormat::Json);
        assert_eq!(cli.log.log_level, "warn,relay_issuer=trace");
        assert!(Cli::try_parse_from(["relay-issuer", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn valid_filters_parse() {
        for directives in [
            "info",
            "off",
            "TRACE",
            "warn,relay_issuer=debug,kube=warn",
            "relay_issuer::controller=trace",
            "info,[reconcile]=debug",
        ] {
            assert!(parse_filter(directives).is_ok(), "{directives:?} refused");
        }
    }

    #[test]
    fn invalid_filters_are_refused_with_a_clear_message() {
        for directives in [
            "",
            "  ",
            "info,kube=loud",
            "relay_issuer=verbose",
            "[unclosed",
        ] {
            let error = parse_filter(directives).unwrap_err();
            assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
            let message = error.to_string();
            assert!(message.contains("--log-level"), "{message}");
            assert!(message.contains("info,relay_issuer=debug"), "{message}");
            assert_eq!(error.metric_label(), "invalid_argument");
        }
    }

    #[test]
    fn init_refuses_a_bad_filter_and_may_be_called_twice() {
        let bad = LogOptions {
            log_level: "info,kube=loud".to_string(),
            ..LogOptions::default()
        };
        assert!(init_logging(&bad).is_err());
        // "off": this installs the test binary's global subscriber; keep other tests quiet.
        let json = LogOptions {
            log_format: LogFormat::Json,
            log_level: "off".to_string(),
        };
        init_logging(&json).unwrap();
        init_logging(&LogOptions::default()).unwrap();
    }
}
