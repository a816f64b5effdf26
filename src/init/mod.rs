//! `init`: from a running app to a verified configuration, in one command.
//!
//! The page the operator wants to secure already says who is logged in: it boots the
//! Messenger with the user's `user_id` and `email` in clear. That boot is the answer
//! key ([`answer`]). In headless Chromium, isolated as `audit` is (`browser`), `init`
//! reads it, finds which cookies are the session, then looks for a place the proxy
//! can learn the same user from on every request (`sources`): each candidate is
//! written as the configuration it would need and run through the proxy's own
//! identity resolver (`app`), accepted only when it finds the page's user with the
//! session and nobody without it. It then finds the logout ([`logout`]), checks the
//! page's Content-Security-Policy ([`csp`]), writes a commented configuration
//! ([`yaml`]) and, unless told not to, verifies it by running a temporary proxy in
//! front of the app and auditing the pages through it (`verify`). What was tried and
//! found is the [`InitReport`].
//!
//! Nothing leaves for any host but the app's origin, Redis is only read (`SCAN`,
//! `GET`, `TYPE`, `STRLEN`), and no cookie value, session id, token or secret is ever
//! printed or written.

pub mod answer;
mod app;
mod browser;
mod candidate;
pub mod csp;
pub mod logout;
mod options;
pub mod pointer;
pub mod report;
mod sources;
mod verify;
pub mod yaml;

pub use options::{InitError, InitOptions};
pub use report::InitReport;

use browser::Browser;

/// Runs `init`: learns, finds, writes and (unless `--no-verify`) verifies.
///
/// `Ok` carries the report whatever was found (its [`InitReport::exit_code`] says
/// how it went); `Err` is a usage problem, an unusable Chromium, or a page with no
/// identified Messenger boot to learn from.
pub fn run(options: &InitOptions) -> Result<InitReport, InitError> {
    let plan = options.plan()?;
    let app = app::App::new(&plan)?;
    let learned = Browser::launch(&plan)?.learn(&plan)?;
    let mut report = InitReport::new(&plan, &learned);
    let evidence = sources::Evidence { plan: &plan, app: &app, learned: &learned };
    let Some(source) = sources::find(&evidence, &mut report.attempts) else {
        return Ok(report);
    };
    let answer = &learned.answer;
    let logout = logout::find(&learned.links);
    let csp = csp::additions(learned.csp.as_deref(), answer.api_base.as_deref());
    let written = yaml::Written::new(&plan, answer, &source, logout.as_ref());
    app.check_config(&written.text, &options.secret_env)?;
    report.found(&source, logout.clone(), csp, &written);
    if plan.verify {
        report.verification =
            Some(verify::run(&plan, &written, answer, &learned, logout.as_ref())?);
    }
    Ok(report)
}
