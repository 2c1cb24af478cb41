//! runc-compatible logging. Engines read these lines: containerd shows the last
//! `{"level":"error","msg":...}` of `--log`, podman reads stderr. Synchronous, no threads.
//!
//! runc (logrus) behaviour, observed: without `--log` the formatted line goes to stderr; with
//! `--log FILE` the formatted line goes to FILE and stderr gets the bare message.

use std::io::Write;
use std::sync::OnceLock;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    Json,
}

struct Logger {
    file: Option<std::fs::File>,
    format: Format,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

pub fn init(path: Option<&str>, format: Format, debug: bool) -> anyhow::Result<()> {
    let file = match path {
        Some(p) if !p.is_empty() => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| anyhow::anyhow!("open log file {p}: {e}"))?,
        ),
        _ => None,
    };
    let _ = LOGGER.set(Logger { file, format, debug });
    Ok(())
}

fn line(level: &str, msg: &str, format: Format) -> String {
    let time = crate::timefmt::rfc3339_secs(std::time::SystemTime::now());
    match format {
        Format::Json => {
            let m = serde_json::to_string(msg).unwrap_or_else(|_| "\"\"".into());
            format!("{{\"level\":\"{level}\",\"msg\":{m},\"time\":\"{time}\"}}\n")
        }
        Format::Text => {
            let m = serde_json::to_string(msg).unwrap_or_else(|_| "\"\"".into());
            format!("time=\"{time}\" level={level} msg={m}\n")
        }
    }
}

/// The top-level error report: the one place an error is printed.
pub fn error(msg: &str) {
    match LOGGER.get() {
        Some(Logger {
            file: Some(f), format, ..
        }) => {
            let _ = (&*f).write_all(line("error", msg, *format).as_bytes());
            let _ = writeln!(std::io::stderr(), "{msg}");
        }
        Some(Logger { file: None, format, .. }) => {
            let _ = std::io::stderr().write_all(line("error", msg, *format).as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(line("error", msg, Format::Text).as_bytes());
        }
    }
}

fn emit(level: &str, msg: &str) {
    let Some(l) = LOGGER.get() else { return };
    let out = line(level, msg, l.format);
    match &l.file {
        Some(f) => {
            let _ = (&*f).write_all(out.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(out.as_bytes());
        }
    }
}

pub fn warn(msg: &str) {
    emit("warning", msg);
}

pub fn debug_enabled() -> bool {
    LOGGER.get().is_some_and(|l| l.debug)
}

pub fn debug(msg: &str) {
    if debug_enabled() {
        emit("debug", msg);
    }
}
