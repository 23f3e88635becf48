//! Log lines on stderr as Python's logging prints zc.zrs's records: `LEVEL logger: message`.
//!
//! The level is the event's `py_level` field where it has one (zc.zrs's events carry their
//! Python level name, CRITICAL included, see [`zrs::log`]); otherwise the tracing level in
//! Python's words. The logger is the event's target.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the formatter on stderr, showing events up to `max_level`.
pub fn init(max_level: Level) {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(max_level)
        .event_format(PyFormat)
        .init();
}

/// The formatter.
pub struct PyFormat;

#[derive(Default)]
struct Fields {
    py_level: Option<String>,
    message: String,
    others: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "py_level" => self.py_level = Some(value.to_string()),
            "message" => self.message = value.to_string(),
            name => self.others.push_str(&format!(" {name}={value}")),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "py_level" => self.py_level = Some(format!("{value:?}")),
            "message" => self.message = format!("{value:?}"),
            name => self.others.push_str(&format!(" {name}={value:?}")),
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
        writeln!(
            writer,
            "{level} {}: {}{}",
            metadata.target(),
            fields.message,
            fields.others
        )
    }
}
