//! Where the proxy can learn the page's user on every request: candidate identity
//! sources, the robust ones first. Each finder writes a candidate as the list item of
//! `identity.sources` it would be, and the app's acceptance check
//! ([`App::accept`](super::app::App::accept)) runs the proxy's resolver on it: the
//! first accepted candidate is the source. Every candidate tried is recorded with why
//! it was accepted or rejected.

mod endpoint;
mod header;
mod html;
mod jwt;
mod jwt_cookie;
mod redis;

use super::app::App;
use super::browser::Learned;
use super::candidate::Attempt;
pub(crate) use super::candidate::Candidate;
use super::options::Plan;

/// What the finders work from.
pub(crate) struct Evidence<'a> {
    /// The arguments.
    pub plan: &'a Plan,
    /// The app, and the acceptance check.
    pub app: &'a App,
    /// What the browser learned: the answer, the session, the page's requests and links.
    pub learned: &'a Learned,
}

impl Evidence<'_> {
    /// Runs the acceptance check on a candidate and records the attempt; the candidate
    /// when accepted.
    pub fn try_candidate(
        &self,
        candidate: Candidate,
        attempts: &mut Vec<Attempt>,
    ) -> Option<Candidate> {
        match self.app.accept(&candidate.yaml, self.plan, self.learned) {
            Ok(found) => {
                attempts.push(Attempt::accepted(
                    candidate.source,
                    &candidate.tried,
                    format!("{}; found {found}", candidate.why),
                ));
                Some(candidate)
            }
            Err(why) => {
                attempts.push(Attempt::rejected(candidate.source, &candidate.tried, why));
                None
            }
        }
    }
}

/// One finder: the candidates it accepted or rejected are recorded in `attempts`; the
/// first accepted one is returned.
type Finder = fn(&Evidence<'_>, &mut Vec<Attempt>) -> Option<Candidate>;

/// The finders, the robust ones first: a header the auth proxy signs or sets, a JWT
/// the app signed, the session store itself, then asking the app: its JSON answer,
/// and last its HTML account page (a redesign can move what a selector finds).
const FINDERS: &[(&str, Finder)] = &[
    ("headers", header::find),
    ("jwt_cookie", jwt_cookie::find),
    ("redis_session", redis::find),
    ("current_user_endpoint", endpoint::find),
    ("current_user_endpoint (html)", html::find),
];

/// The first source the acceptance check accepts, trying the finders in order.
pub(crate) fn find(evidence: &Evidence<'_>, attempts: &mut Vec<Attempt>) -> Option<Candidate> {
    FINDERS.iter().find_map(|(_, finder)| finder(evidence, attempts))
}

/// The answer of a page that booted user `u-1` named `Ann` (with `email`), for the
/// finders' tests.
#[cfg(test)]
pub(crate) fn test_answer(email: Option<&str>) -> super::answer::Answer {
    super::answer::Answer {
        user_id: "u-1".into(),
        email: email.map(Into::into),
        name: Some("Ann".into()),
        app_id: None,
        api_base: None,
        today: crate::audit::classify::Classification::Insecure,
        page: "/".into(),
    }
}
