//! The report path (`rollout.report_path`, `POST /__isp/report`), answered by the proxy
//! itself in every mode, never forwarded to the app: report-only pages' observers send
//! how the page's Messenger booted.
//!
//! A report is `{"verdict": ..., "fields": [...]}`: one of the verdicts of `audit` and
//! the names of the identifying fields given in clear, never a value. It is counted in
//! `page_reports_total{verdict}`, and a sample is logged (the page's path without its
//! query, from `Referer`, the verdict and the field names). The answer is 204 with no
//! body; 405 for another method than `POST`, 403 for a request from another origin (it
//! needs `Sec-Fetch-Site: same-origin`, or without that header an `Origin` naming the
//! request's host), 413 for a body over [`MAX_REPORT_BYTES`], 400 for anything else
//! than a report. Always `no-store`, no cookie.

use bytes::BytesMut;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;

use super::SecureMode;
use crate::headers;
use crate::metrics::METRICS;
use crate::page::IDENTIFYING_FIELDS;

/// The largest report body accepted: a report is some 60 bytes.
pub(crate) const MAX_REPORT_BYTES: usize = 1024;

/// The verdicts a report may carry (`audit`'s classes).
const VERDICTS: [&str; 5] = ["none", "anonymous", "insecure", "user_hash", "jwt"];

/// What an observer reported.
#[derive(Debug, PartialEq, Eq)]
struct Report {
    verdict: &'static str,
    /// The identifying fields given in clear, as named in [`IDENTIFYING_FIELDS`].
    fields: Vec<&'static str>,
}

/// Why a request to the report path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Not a `POST`: 405.
    Method,
    /// Not from a page of this origin: 403.
    CrossSite,
    /// A body over the bound: 413.
    TooLarge,
    /// Not a report: 400.
    Malformed,
}

impl Refusal {
    fn status(self) -> u16 {
        match self {
            Refusal::Method => 405,
            Refusal::CrossSite => 403,
            Refusal::TooLarge => 413,
            Refusal::Malformed => 400,
        }
    }
}

impl Report {
    /// Reads a report; `None` when the body is not one. Only known verdicts and field
    /// names are kept, as the proxy's own strings: nothing the page sent is echoed.
    fn parse(body: &[u8]) -> Option<Report> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let said = value.get("verdict")?.as_str()?;
        let verdict = VERDICTS.into_iter().find(|v| *v == said)?;
        let mut fields = Vec::new();
        for name in value.get("fields").and_then(|f| f.as_array()).map_or(&[][..], Vec::as_slice) {
            let known = IDENTIFYING_FIELDS.into_iter().find(|f| Some(*f) == name.as_str())?;
            if !fields.contains(&known) {
                fields.push(known);
            }
        }
        Some(Report { verdict, fields })
    }
}

/// Whether the request comes from a page of the origin it is sent to: the browser's
/// `Sec-Fetch-Site` says so, or (from a browser without it) `Origin` names the host.
fn is_same_origin(req: &RequestHeader) -> bool {
    if let Some(site) = req.headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let origin = req.headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = req.headers.get(http::header::HOST).and_then(|v| v.to_str().ok());
    match (origin.and_then(|o| o.split_once("://")), host) {
        (Some((_, authority)), Some(host)) => authority.eq_ignore_ascii_case(host),
        _ => false,
    }
}

/// The path of the page a report came from, as a log line may hold it.
fn page_path(req: &RequestHeader) -> &str {
    let referer =
        req.headers.get(http::header::REFERER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let after_scheme = referer.split_once("://").map_or("", |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("", |at| &after_scheme[at..]);
    match crate::warn::loggable_path(path) {
        "" => "-",
        p => p,
    }
}

/// The body, up to `max` bytes: a longer one (announced or sent) is refused unread.
async fn read_bounded(session: &mut Session, max: usize) -> Result<BytesMut, Refusal> {
    let announced = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok());
    if announced.and_then(|v| v.trim().parse::<u64>().ok()).is_some_and(|n| n > max as u64) {
        return Err(Refusal::TooLarge);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await.map_err(|_| Refusal::Malformed)? {
        if body.len() + chunk.len() > max {
            return Err(Refusal::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl SecureMode {
    /// A request for the report path, whatever its method (answered by the proxy).
    pub(super) fn is_report(&self, req: &RequestHeader) -> bool {
        req.uri.path() == self.report_path
    }

    /// Answers the report path: 204 for a report, which is counted and sampled in the
    /// log, else the refusal's status.
    pub(super) async fn answer_report(&self, session: &mut Session) -> pingora::Result<()> {
        let status = match self.take_report(session).await {
            Ok(report) => {
                note_report(session.req_header(), &report);
                204
            }
            Err(refusal) => {
                // What is left of the body is not read: the connection ends with this answer.
                session.set_keepalive(None);
                refusal.status()
            }
        };
        let mut resp = ResponseHeader::build(status, Some(4))?;
        resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        if status != 204 {
            resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
        }
        if status == 405 {
            resp.insert_header(http::header::ALLOW, "POST")?;
        }
        headers::fit_framing(session, &mut resp);
        session.write_response_header(Box::new(resp), true).await
    }

    /// The report of this request, or why it is refused.
    async fn take_report(&self, session: &mut Session) -> Result<Report, Refusal> {
        let req = session.req_header();
        if req.method != http::Method::POST {
            return Err(Refusal::Method);
        }
        if !is_same_origin(req) {
            return Err(Refusal::CrossSite);
        }
        let body = read_bounded(session, MAX_REPORT_BYTES).await?;
        Report::parse(&body).ok_or(Refusal::Malformed)
    }
}

/// Counts a report and logs a sample: a few lines per 10 s, whatever the traffic.
fn note_report(req: &RequestHeader, report: &Report) {
    METRICS.page_reports.with_label_values(&[report.verdict]).inc();
    static SAMPLE: crate::warn::Limiter = crate::warn::Limiter::new();
    if SAMPLE.admit().is_some() {
        let fields =
            if report.fields.is_empty() { "none".to_string() } else { report.fields.join(", ") };
        log::info!(
            "report-only page {}: the Messenger boots {} (fields in clear: {fields})",
            page_path(req),
            report.verdict
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_a_known_verdict_and_known_field_names_only() {
        let parse = |s: &str| Report::parse(s.as_bytes());
        assert_eq!(
            parse(r#"{"verdict":"insecure","fields":["user_id","email","user_id"]}"#),
            Some(Report { verdict: "insecure", fields: vec!["user_id", "email"] })
        );
        assert_eq!(
            parse(r#"{"verdict":"jwt","fields":[]}"#),
            Some(Report { verdict: "jwt", fields: vec![] })
        );
        assert_eq!(
            parse(r#"{"verdict":"none"}"#),
            Some(Report { verdict: "none", fields: vec![] })
        );
        for bad in [
            r#"{"verdict":"alice@example.com"}"#,
            r#"{"verdict":"insecure","fields":["alice"]}"#,
            "not json",
            "{}",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn same_origin_is_what_the_browser_says_or_the_origin_naming_the_host() {
        let req = |headers: &[(&'static str, &'static str)]| {
            let mut r = RequestHeader::build("POST", b"/__isp/report", None).unwrap();
            for (k, v) in headers {
                r.insert_header(*k, *v).unwrap();
            }
            r
        };
        assert!(is_same_origin(&req(&[("sec-fetch-site", "same-origin")])));
        assert!(!is_same_origin(&req(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://app"),
            ("host", "app")
        ])));
        assert!(!is_same_origin(&req(&[("sec-fetch-site", "same-site")])));
        assert!(is_same_origin(&req(&[("origin", "http://App:8080"), ("host", "app:8080")])));
        assert!(!is_same_origin(&req(&[("origin", "http://evil.test"), ("host", "app")])));
        assert!(!is_same_origin(&req(&[("host", "app")])), "no evidence is no");
        assert_eq!(
            page_path(&req(&[("referer", "http://app/account;jsessionid=x?tab=1")])),
            "/account"
        );
        assert_eq!(page_path(&req(&[])), "-");
    }
}
