//! Log lines on stderr, as a ZEO server running zc.zrs prints them, or as JSON lines.
//!
//! Formats (`--log-format`):
//! - `zeo` (default): exactly ZEO's `runzeo` default handler, `"------\n%(asctime)s
//!   %(levelname)s %(name)s %(message)s"` with `%Y-%m-%dT%H:%M:%S` in local time, so that
//!   an operator's log tooling for zc.zrs reads zrs's logs unchanged:
//!   ```text
//!   ------
//!   2026-11-30T04:12:00 INFO zc.zrs.secondary Opening Data.fs ('127.0.0.1', 8000)
//!   ```
//! - `plain`: `LEVEL logger: message`, no time, as zc.zrs's test handler prints a record on
//!   one line (for diffing against transcripts, and for tests);
//! - `json`: one object a line: `time` (UTC, RFC 3339 with milliseconds), `level`, `logger`,
//!   `message`, and any other fields of the event.
//!
//! The level is the event's `py_level` field where it has one (zc.zrs's events carry their
//! Python level name, CRITICAL included, see [`zrs::log`]); otherwise the tracing level in
//! Python's words. The logger is the event's target. Which events show is `RUST_LOG`'s
//! business (tracing-subscriber's `EnvFilter`: `RUST_LOG=zc.zrs.secondary=info,zrs=debug`),
//! `info` when it is unset (`debug` with `-v`).
//!
//! Time stamps are made here and only here: the protocol core and the simulator never see
//! a clock, and the simulator's transcripts print no time.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// ZEO's default: `------` then `2026-11-30T04:12:00 INFO zc.zrs.secondary message`.
    Zeo,
    /// `INFO zc.zrs.secondary: message`, no time stamp.
    Plain,
    /// One JSON object a line.
    Json,
}

/// Installs the formatter on stderr. `RUST_LOG` chooses what shows; without it,
/// `default_level` and up.
pub fn init(format: LogFormat, default_level: Level) {
    let filter = EnvFilter::builder()
        .with_default_directive(default_level.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .event_format(PyFormat { format })
        .init();
}

/// The formatter.
pub struct PyFormat {
    pub format: LogFormat,
}

#[derive(Default)]
struct Fields {
    py_level: Option<String>,
    message: String,
    others: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "py_level" => self.py_level = Some(value.to_string()),
            "message" => self.message = value.to_string(),
            name => self.others.push((name, value.to_string())),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "py_level" => self.py_level = Some(format!("{value:?}")),
            "message" => self.message = format!("{value:?}"),
            name => self.others.push((name, format!("{value:?}"))),
        }
    }
}

/// Python's name for a tracing level.
fn python_level(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

impl<S, N> FormatEvent<S, N> for PyFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        let level = fields
            .py_level
            .as_deref()
            .unwrap_or_else(|| python_level(metadata.level()));
        let logger = metadata.target();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let others: String = fields
            .others
            .iter()
            .map(|(k, v)| format!(" {k}={v}"))
            .collect();
        match self.format {
            LogFormat::Zeo => writeln!(
                writer,
                "------\n{} {level} {logger} {}{others}",
                local_asctime(now.as_secs() as i64),
                fields.message,
            ),
            LogFormat::Plain => writeln!(writer, "{level} {logger}: {}{others}", fields.message),
            LogFormat::Json => {
                let mut object = serde_json::Map::new();
                object.insert("time".into(), utc_rfc3339(now).into());
                object.insert("level".into(), level.into());
                object.insert("logger".into(), logger.into());
                object.insert("message".into(), fields.message.into());
                for (k, v) in fields.others {
                    object.insert(k.into(), v.into());
                }
                writeln!(writer, "{}", serde_json::Value::Object(object))
            }
        }
    }
}

/// `%Y-%m-%dT%H:%M:%S` of Unix time `secs` in the local time zone, as Python's logging
/// formats `asctime` (its converter is `time.localtime`).
pub fn local_asctime(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = local_fields(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
}

#[cfg(unix)]
fn local_fields(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    // SAFETY: localtime_r writes into the tm we own; a zeroed tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t: libc::time_t = secs as libc::time_t;
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return utc_fields(secs);
    }
    (
        tm.tm_year as i64 + 1900,
        (tm.tm_mon + 1) as u32,
        tm.tm_mday as u32,
        tm.tm_hour as u32,
        tm.tm_min as u32,
        tm.tm_sec as u32,
    )
}

#[cfg(not(unix))]
fn local_fields(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    utc_fields(secs)
}

/// Civil date and time (UTC) of Unix time `secs`: the date as a tid's timestamp reckons it.
pub fn utc_fields(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let (y, m, d) = zrs::tid::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400) as u32;
    (y, m, d, rem / 3600, rem / 60 % 60, rem % 60)
}

/// `2026-11-30T04:12:00.123Z`.
fn utc_rfc3339(since_epoch: std::time::Duration) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(since_epoch.as_secs() as i64);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_civil_dates() {
        assert_eq!(utc_fields(0), (1970, 1, 1, 0, 0, 0));
        // 2026-11-30T04:12:00Z, and a leap day.
        assert_eq!(utc_fields(1_796_011_920), (2026, 11, 30, 4, 12, 0));
        assert_eq!(utc_fields(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(
            utc_rfc3339(std::time::Duration::from_millis(1_796_011_920_042)),
            "2026-11-30T04:12:00.042Z"
        );
    }
}
