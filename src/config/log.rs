//! `log`: the access log.

use super::*;

/// The access log: where it goes and in which format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Where access log lines go.
    pub access: AccessLog,
    /// The line format.
    pub format: LogFormat,
}

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    /// No access log.
    Off,
    /// Standard output (for journald, Docker, Kubernetes).
    Stdout,
    /// Appended to this file, reopened when it is moved away (log rotation).
    File(PathBuf),
}

/// The format of an access log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// The Apache/nginx "combined" format.
    Combined,
}

/// Default of `log.access`: off, so nothing is written unless asked for.
pub const DEFAULT_ACCESS_LOG: AccessLog = AccessLog::Off;
/// Default of `log.format`.
pub const DEFAULT_LOG_FORMAT: LogFormat = LogFormat::Json;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { access: DEFAULT_ACCESS_LOG, format: DEFAULT_LOG_FORMAT }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLog {
    access: Option<String>,
    format: Option<String>,
}

pub(super) fn validate_log(l: FileLog) -> Result<LogConfig> {
    let access = match l.access.as_deref().map(str::trim) {
        None => DEFAULT_ACCESS_LOG,
        Some("off") => AccessLog::Off,
        Some("stdout") => AccessLog::Stdout,
        Some(path) if path.starts_with('/') => {
            let path = PathBuf::from(path);
            let dir = path.parent().filter(|d| d.is_dir());
            if dir.is_none() {
                return Err(ConfigError::new(
                    "log.access",
                    format!(
                        "the directory of {} does not exist; create it or choose another path",
                        path.display()
                    ),
                ));
            }
            AccessLog::File(path)
        }
        Some(other) => {
            return Err(ConfigError::new(
                "log.access",
                format!("{other:?} is not stdout, off or an absolute file path"),
            ))
        }
    };
    let format = match l.format.as_deref().map(str::trim) {
        None => DEFAULT_LOG_FORMAT,
        Some("json") => LogFormat::Json,
        Some("combined") => LogFormat::Combined,
        Some(other) => {
            return Err(ConfigError::new(
                "log.format",
                format!("{other:?} is not a log format; use json or combined"),
            ))
        }
    };
    Ok(LogConfig { access, format })
}
