//! Log events as zc.zrs emits them: a Python logger name and a Python level.
//!
//! Events go through `tracing`, with the logger name as the target. Python has a CRITICAL
//! level that `tracing` lacks, so every event also carries its Python level name in the
//! field `py_level`; transcripts print that (`CRITICAL zc.zrs.secondary:`).

/// Logs `message` at INFO under `logger`.
pub fn info(logger: &'static str, message: &str) {
    emit(logger, "INFO", message)
}

/// Logs `message` at WARNING under `logger`.
pub fn warning(logger: &'static str, message: &str) {
    emit(logger, "WARNING", message)
}

/// Logs `message` at ERROR under `logger`.
pub fn error(logger: &'static str, message: &str) {
    emit(logger, "ERROR", message)
}

/// Logs `message` at DEBUG under `logger`.
pub fn debug(logger: &'static str, message: &str) {
    emit(logger, "DEBUG", message)
}

/// Logs `message` at CRITICAL under `logger`.
pub fn critical(logger: &'static str, message: &str) {
    emit(logger, "CRITICAL", message)
}

// `tracing` needs the target at compile time, so each logger is spelled out here.
fn emit(logger: &'static str, level: &'static str, message: &str) {
    macro_rules! event {
        ($target:literal) => {
            match level {
                "INFO" => tracing::info!(target: $target, py_level = level, "{message}"),
                "WARNING" => tracing::warn!(target: $target, py_level = level, "{message}"),
                "DEBUG" => tracing::debug!(target: $target, py_level = level, "{message}"),
                _ => tracing::error!(target: $target, py_level = level, "{message}"),
            }
        };
    }
    match logger {
        "zc.zrs.secondary" => event!("zc.zrs.secondary"),
        "zc.zrs.reactor" => event!("zc.zrs.reactor"),
        "zc.zrs.primary" => event!("zc.zrs.primary"),
        _ => event!("zrs"),
    }
}
