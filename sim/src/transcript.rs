//! Capturing log events into a transcript, formatted as zc.zrs's test log handler formats
//! them: `LEVEL logger:` on one line, the message on the next.
//!
//! A run installs [`Capture`] as the thread's default subscriber, so concurrent runs (a
//! campaign's jobs) never mix their logs. Spans are not used by zrs, so this subscriber
//! implements only events; it is a dozen lines, where a `tracing-subscriber` layer stack
//! would cost more per event than the runs themselves.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// The lines written so far, shared with the subscriber.
#[derive(Clone, Default)]
pub struct Sink(Arc<Mutex<String>>);

impl Sink {
    /// Takes everything captured so far.
    pub fn take(&self) -> String {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A subscriber that appends each event to a [`Sink`].
pub struct Capture {
    sink: Sink,
    /// Events below this level are dropped (they are not part of transcripts).
    max_level: Level,
}

impl Capture {
    pub fn new(sink: Sink) -> Capture {
        Capture {
            sink,
            max_level: Level::INFO,
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    py_level: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "py_level" => self.py_level = Some(value.to_string()),
            "message" => self.message.push_str(value),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "py_level" => self.py_level = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

/// Python's level name for a `tracing` level, where the event does not carry its own.
fn python_level(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

impl Subscriber for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max_level
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = fields
            .py_level
            .unwrap_or_else(|| python_level(event.metadata().level()).to_string());
        let mut out = self.sink.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{level} {}:", event.metadata().target());
        out.push_str(&fields.message);
        out.push('\n');
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_reference_log_handler() {
        let sink = Sink::default();
        tracing::subscriber::with_default(Capture::new(sink.clone()), || {
            zrs::log::info("zc.zrs.secondary", "Opening Data.fs ('', 8000)");
            zrs::log::critical("zc.zrs.secondary", "peer: Input data error\nwhy");
            tracing::debug!("not in transcripts");
        });
        assert_eq!(
            sink.take(),
            "INFO zc.zrs.secondary:\nOpening Data.fs ('', 8000)\n\
             CRITICAL zc.zrs.secondary:\npeer: Input data error\nwhy\n"
        );
    }
}
