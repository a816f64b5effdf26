//! The audit's report: one record per page and the logout check, printed as a table
//! for people or as one JSON document for CI. Neither ever holds a cookie value, a
//! token or a secret.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::classify::Classification;
use super::finding::Finding;
use super::jwt::JwtReport;
use super::logout::LogoutReport;

/// What the audit found on one page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageReport {
    /// The URL as given.
    pub url: String,
    /// The URL the browser ended on (after redirects).
    pub final_url: Option<String>,
    /// The HTTP status of the final document.
    pub status: Option<u16>,
    /// How the Messenger booted (the worst of the page's Messengers).
    pub classification: Classification,
    /// Identifying fields given to the Messenger in clear (`user_id`, `email`).
    pub fields: Vec<&'static str>,
    /// The user the Messenger was booted as: the plain `user_id`, else the token's.
    pub user_id: Option<String>,
    /// The `app_id` it booted for.
    pub app_id: Option<String>,
    /// The token's checks, on `jwt` pages.
    pub jwt: Option<JwtReport>,
    /// The document's `Cache-Control`.
    pub cache_control: Option<String>,
    /// A page carrying identity that a shared cache may store.
    pub shared_cacheable: bool,
    /// Requests the audit refused, by origin (`scheme://host:port`), with their count.
    pub blocked_origins: BTreeMap<String, u32>,
    /// Why the page could not be loaded, if it could not.
    pub error: Option<String>,
    /// What fails the audit on this page.
    pub findings: Vec<Finding>,
    /// No findings.
    pub passed: bool,
}

impl PageReport {
    /// The verdict column: the classification, with the token's state or `legacy`.
    pub fn verdict(&self) -> String {
        match (self.classification, &self.jwt) {
            _ if self.error.is_some() => "error".into(),
            (Classification::Jwt, Some(jwt)) => match (jwt.verified, jwt.problems.is_empty()) {
                (_, false) => "jwt (FAILS CHECKS)".into(),
                (Some(true), true) => "jwt (verified)".into(),
                _ => "jwt (not verified)".into(),
            },
            (Classification::UserHash, _) => "user_hash (legacy)".into(),
            (Classification::Insecure, _) => "INSECURE".into(),
            (other, _) => other.as_str().into(),
        }
    }
}

/// The whole audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Every page passed and so did the logout check (when asked for): exit code 0.
    pub passed: bool,
    /// The pages, in the order given.
    pub pages: Vec<PageReport>,
    /// The `--logout` check, when asked for.
    pub logout: Option<LogoutReport>,
}

impl Report {
    /// The report of these pages and logout check.
    pub fn new(pages: Vec<PageReport>, logout: Option<LogoutReport>) -> Report {
        let passed = pages.iter().all(|p| p.passed) && logout.as_ref().is_none_or(|l| l.passed);
        Report { passed, pages, logout }
    }

    /// The JSON document of `--json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report is plain data")
    }

    /// The human table: one row per page, its findings and blocked origins below it,
    /// then the logout check and the result.
    pub fn table(&self) -> String {
        let header = ["URL", "STATUS", "VERDICT", "USER", "CACHE-CONTROL"];
        let rows: Vec<[String; 5]> = self
            .pages
            .iter()
            .map(|p| {
                [
                    p.url.clone(),
                    p.status.map_or("-".into(), |s| s.to_string()),
                    p.verdict(),
                    p.user_id.clone().unwrap_or_else(|| "-".into()),
                    p.cache_control.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let padded: Vec<String> =
                cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
            padded.join("  ").trim_end().to_string() + "\n"
        };
        let mut out = line(&header.map(String::from));
        for (page, row) in self.pages.iter().zip(&rows) {
            out += &line(row);
            if let Some(final_url) = page.final_url.as_ref().filter(|u| **u != page.url) {
                let _ = writeln!(out, "    ended on {final_url}");
            }
            if let Some(jwt) = &page.jwt {
                let exp = jwt.exp.map_or("no exp".into(), |e| {
                    format!(
                        "exp {}",
                        humantime::format_rfc3339_seconds(
                            std::time::UNIX_EPOCH + std::time::Duration::from_secs(e)
                        )
                    )
                });
                let _ = writeln!(
                    out,
                    "    token: user_id={}, {exp}",
                    jwt.user_id.as_deref().unwrap_or("(none)")
                );
            }
            for f in &page.findings {
                let _ = writeln!(out, "    FAIL {}: {}", f.code, f.message);
            }
            for (origin, count) in &page.blocked_origins {
                let _ = writeln!(out, "    blocked {count} request(s) to {origin}");
            }
        }
        if let Some(logout) = &self.logout {
            let _ = writeln!(
                out,
                "\nlogout {}: {}",
                logout.url,
                if logout.passed {
                    "PASS (shutdown ran, nothing identified after it)"
                } else {
                    "FAIL"
                }
            );
            for f in &logout.findings {
                let _ = writeln!(out, "    FAIL {}: {}", f.code, f.message);
            }
        }
        let failed = self.pages.iter().filter(|p| !p.passed).count();
        let _ = writeln!(
            out,
            "\n{}: {} page(s), {failed} with findings{}",
            if self.passed { "SECURE" } else { "NOT SECURE" },
            self.pages.len(),
            match &self.logout {
                Some(l) if l.passed => ", logout check passed",
                Some(_) => ", logout check failed",
                None => "",
            }
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(classification: Classification) -> PageReport {
        PageReport {
            url: "http://127.0.0.1:3000/".into(),
            final_url: Some("http://127.0.0.1:3000/".into()),
            status: Some(200),
            classification,
            fields: vec!["user_id", "email"],
            user_id: Some("alice".into()),
            app_id: Some("demo1234".into()),
            jwt: None,
            cache_control: None,
            shared_cacheable: false,
            blocked_origins: BTreeMap::from([("https://www.google-analytics.com".to_string(), 2)]),
            error: None,
            findings: vec![Finding::new("insecure_identity", "user_id, email in clear")],
            passed: false,
        }
    }

    #[test]
    fn the_json_has_the_documented_fields() {
        let report = Report::new(vec![page(Classification::Insecure)], None);
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["passed"], false);
        let p = &json["pages"][0];
        let mut keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "app_id",
                "blocked_origins",
                "cache_control",
                "classification",
                "error",
                "fields",
                "final_url",
                "findings",
                "jwt",
                "passed",
                "shared_cacheable",
                "status",
                "url",
                "user_id"
            ]
        );
        assert_eq!(p["classification"], "insecure");
        assert_eq!(p["findings"][0]["code"], "insecure_identity");
        assert_eq!(json["logout"], serde_json::Value::Null);
    }

    #[test]
    fn the_table_has_a_row_per_page_and_the_findings_under_it() {
        let mut secure = page(Classification::Jwt);
        secure.url = "http://127.0.0.1:8080/".into();
        secure.final_url = Some(secure.url.clone());
        secure.jwt = Some(JwtReport {
            verified: Some(true),
            user_id: Some("alice".into()),
            exp: Some(1_800_000_000),
            problems: vec![],
        });
        secure.findings.clear();
        secure.blocked_origins.clear();
        secure.passed = true;
        let table = Report::new(vec![page(Classification::Insecure), secure], None).table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "URL                     STATUS  VERDICT         USER   CACHE-CONTROL"
        );
        assert_eq!(lines[1], "http://127.0.0.1:3000/  200     INSECURE        alice  -");
        assert_eq!(lines[2], "    FAIL insecure_identity: user_id, email in clear");
        assert_eq!(lines[3], "    blocked 2 request(s) to https://www.google-analytics.com");
        assert_eq!(lines[4], "http://127.0.0.1:8080/  200     jwt (verified)  alice  -");
        assert_eq!(lines[5], "    token: user_id=alice, exp 2027-01-15T08:00:00Z");
        assert_eq!(lines.last().unwrap(), &"NOT SECURE: 2 page(s), 1 with findings");
    }
}
