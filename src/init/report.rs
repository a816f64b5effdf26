//! What `init` tried and found: a short human report, or one JSON document.

use serde::Serialize;

use super::answer::Answer;
use super::browser::Learned;
use super::candidate::{Attempt, Candidate};
use super::logout::Logout;
use super::options::Plan;
use super::verify::Verification;
use super::yaml::Written;

/// The report of `init`.
#[derive(Debug, Serialize)]
pub struct InitReport {
    /// The app's origin.
    pub upstream: String,
    /// Each page and how its Messenger booted.
    pub pages: Vec<PageSeen>,
    /// What the page booted the Messenger with.
    pub answer: Answer,
    /// The names of the session cookies (never their values).
    pub session_cookies: Vec<String>,
    /// Whether removing any one of them lost the user (false: no single one's removal
    /// did, so all the cookies are taken as the session).
    pub session_tested: bool,
    /// Every candidate source tried, in order.
    pub attempts: Vec<Attempt>,
    /// The accepted source's `type`.
    pub source: Option<&'static str>,
    /// The logout found on the pages.
    pub logout: Option<Logout>,
    /// The additions the page's Content-Security-Policy needs for the Messenger.
    pub csp_additions: Vec<String>,
    /// The configuration written.
    pub config: Option<String>,
    /// The verification, unless `--no-verify`.
    pub verification: Option<Verification>,
}

/// A page and its verdict.
#[derive(Debug, Serialize)]
pub struct PageSeen {
    /// The page's final URL.
    pub url: String,
    /// How its Messenger booted (`audit`'s verdicts).
    pub verdict: &'static str,
}

impl InitReport {
    pub(crate) fn new(plan: &Plan, learned: &Learned) -> InitReport {
        InitReport {
            upstream: plan.origin.as_str().trim_end_matches('/').to_string(),
            pages: learned
                .pages
                .iter()
                .map(|(url, verdict)| PageSeen { url: url.clone(), verdict: verdict.as_str() })
                .collect(),
            answer: learned.answer.clone(),
            session_cookies: learned.session.iter().map(|c| c.name.clone()).collect(),
            session_tested: learned.session_tested,
            attempts: Vec::new(),
            source: None,
            logout: None,
            csp_additions: Vec::new(),
            config: None,
            verification: None,
        }
    }

    pub(crate) fn found(
        &mut self,
        source: &Candidate,
        logout: Option<Logout>,
        csp: Vec<String>,
        written: &Written,
    ) {
        self.source = Some(source.source);
        self.logout = logout;
        self.csp_additions = csp;
        self.config = Some(written.text.clone());
    }

    /// 0: written and verified (or written, with `--no-verify`); 1: written but the
    /// verification failed; 4: no identity source found.
    pub fn exit_code(&self) -> u8 {
        match (&self.config, &self.verification) {
            (None, _) => 4,
            (Some(_), Some(v)) if !v.passed => 1,
            (Some(_), _) => 0,
        }
    }

    /// The human report.
    pub fn human(&self, written_to: Option<&str>) -> String {
        let mut out = format!("init {}\n", self.upstream);
        for page in &self.pages {
            out.push_str(&format!("  page {}: {}\n", page.url, page.verdict));
        }
        let a = &self.answer;
        out.push_str(&format!(
            "  the Messenger booted user_id {:?}{}{} ({}) on {}\n",
            a.user_id,
            a.email.as_deref().map(|e| format!(", email {e:?}")).unwrap_or_default(),
            a.name.as_deref().map(|n| format!(", name {n:?}")).unwrap_or_default(),
            a.today.as_str(),
            a.page
        ));
        out.push_str(&match (self.session_cookies.as_slice(), self.session_tested) {
            ([], _) => {
                "  session cookies: none (the user does not depend on a cookie)\n".to_string()
            }
            (names, true) => {
                format!("  session cookies: {} (without them the user is lost)\n", names.join(", "))
            }
            (names, false) => format!(
                "  session cookies: {} (no single one's removal lost the user: all are kept)\n",
                names.join(", ")
            ),
        });
        out.push_str("  identity sources tried:\n");
        let width = self.attempts.iter().map(|t| t.tried.len()).max().unwrap_or(0);
        for t in &self.attempts {
            let verdict = if t.accepted { "accepted" } else { "rejected" };
            out.push_str(&format!(
                "    {:<21} {:<width$}  {verdict}: {}\n",
                t.source, t.tried, t.why
            ));
        }
        let Some(source) = self.source else {
            out.push_str("  no identity source found: none of the above knows the page's user; see why each was rejected\n");
            return out;
        };
        out.push_str(&format!("  source: {source}\n"));
        out.push_str(&match &self.logout {
            Some(l) => format!("  logout: {} ({})\n", l.path_rule(), l.why),
            None => "  logout: no log-out link or form found; a response expiring the session cookie is the logout\n".to_string(),
        });
        match self.csp_additions.as_slice() {
            [] => out.push_str("  Content-Security-Policy: nothing to add\n"),
            additions => {
                out.push_str("  Content-Security-Policy: the page's policy blocks the Messenger; the app's team must add:\n");
                for a in additions {
                    out.push_str(&format!("    {a}\n"));
                }
            }
        }
        if let Some(path) = written_to {
            out.push_str(&format!("  configuration written to {path}\n"));
        }
        match &self.verification {
            None => out.push_str("  not verified (--no-verify)\n"),
            Some(v) => {
                out.push_str("\nbefore: the pages directly at the app\n");
                out.push_str(&v.before.table());
                out.push_str(
                    "\nafter: the pages through a temporary proxy with this configuration\n",
                );
                out.push_str(&v.after.table());
                if v.passed {
                    out.push_str("\nverified: every page boots the Messenger with a verified token for this user\n");
                } else {
                    out.push_str("\nNOT verified: through the proxy with this configuration:\n");
                    for failure in &v.failures {
                        out.push_str(&format!("  {failure}\n"));
                    }
                    if !self.csp_additions.is_empty() {
                        out.push_str("  (the page's Content-Security-Policy blocks the Messenger until the additions above are made)\n");
                    }
                }
            }
        }
        out
    }

    /// The JSON report.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report is plain data")
    }
}
