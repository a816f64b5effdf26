//! `rollout`: how much of Secure Mode a site runs (enforce, report only, off), for which
//! share of its users, and where report-only pages send what they saw.

use super::*;

/// How a site's pages are treated: the file's `rollout` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutConfig {
    /// What the proxy does with the pages of users in the rollout.
    pub mode: RolloutMode,
    /// Share of users in the rollout, 0 to 100.
    pub percent: u8,
    /// The path report-only pages post their report to (answered by the proxy).
    pub report_path: String,
}

/// `rollout.mode`: what the proxy does with the pages of users in the rollout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutMode {
    /// Secure Mode: tokens, stripped plain identity, logouts.
    #[default]
    Enforce,
    /// The page's Intercom code is left alone; an observer reports how it boots.
    ReportOnly,
    /// Everything passes through, as with `run --passthrough`.
    Off,
}

impl RolloutMode {
    /// The name in the file, the admin API and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutMode::Enforce => "enforce",
            RolloutMode::ReportOnly => "report_only",
            RolloutMode::Off => "off",
        }
    }

    /// Every mode, for the metrics' label values.
    pub const ALL: [RolloutMode; 3] =
        [RolloutMode::Enforce, RolloutMode::ReportOnly, RolloutMode::Off];

    /// The mode named `name` (as written in the file and the admin API).
    pub fn parse(name: &str) -> Option<RolloutMode> {
        RolloutMode::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// Default of `rollout.percent`: everyone.
pub const DEFAULT_ROLLOUT_PERCENT: u8 = 100;
/// Default of `rollout.report_path` (answered by the proxy, never forwarded).
pub const DEFAULT_REPORT_PATH: &str = "/__isp/report";

impl Default for RolloutConfig {
    /// What an empty `rollout:` section validates to: enforce for everyone.
    fn default() -> Self {
        RolloutConfig {
            mode: RolloutMode::default(),
            percent: DEFAULT_ROLLOUT_PERCENT,
            report_path: DEFAULT_REPORT_PATH.to_string(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRollout {
    mode: Option<RolloutMode>,
    percent: Option<i64>,
    report_path: Option<String>,
}

/// Validates a `rollout` section; `refresh_path` is the site's `inject.token_refresh_path`,
/// which the report path may not be.
pub(super) fn validate_rollout(r: FileRollout, refresh_path: &str) -> Result<RolloutConfig> {
    let percent = match r.percent {
        None => DEFAULT_ROLLOUT_PERCENT,
        Some(p) => u8::try_from(p).ok().filter(|p| *p <= 100).ok_or_else(|| {
            ConfigError::new(
                "rollout.percent",
                format!("{p} is not a share of users; write a whole number from 0 to 100"),
            )
        })?,
    };
    let report_path = r.report_path.unwrap_or_else(|| DEFAULT_REPORT_PATH.to_string());
    if !super::inject::is_plain_path(&report_path) {
        return Err(ConfigError::new(
            "rollout.report_path",
            format!("{report_path:?} is not a plain path; write one the app does not use, e.g. {DEFAULT_REPORT_PATH}"),
        ));
    }
    if report_path == refresh_path {
        return Err(ConfigError::new(
            "rollout.report_path",
            format!("{report_path} is already inject.token_refresh_path; give reports a path of their own, e.g. {DEFAULT_REPORT_PATH}"),
        ));
    }
    Ok(RolloutConfig { mode: r.mode.unwrap_or_default(), percent, report_path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_matches_an_empty_section() {
        let validated = validate_rollout(FileRollout::default(), "/__isp/token").unwrap();
        assert_eq!(validated, RolloutConfig::default());
    }

    #[test]
    fn percent_and_paths_are_checked_by_key() {
        let with = |percent: Option<i64>, path: Option<&str>| {
            validate_rollout(
                FileRollout { mode: None, percent, report_path: path.map(str::to_string) },
                "/__isp/token",
            )
        };
        for bad in [-1, 101, 1000] {
            assert_eq!(with(Some(bad), None).unwrap_err().key, "rollout.percent", "{bad}");
        }
        assert_eq!(with(Some(0), None).unwrap().percent, 0);
        assert_eq!(with(Some(100), None).unwrap().percent, 100);
        for bad in ["report", "/a?b", "/a//b", "/__isp/token"] {
            assert_eq!(with(None, Some(bad)).unwrap_err().key, "rollout.report_path", "{bad}");
        }
        for mode in RolloutMode::ALL {
            assert_eq!(RolloutMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(RolloutMode::parse("on"), None);
    }
}
