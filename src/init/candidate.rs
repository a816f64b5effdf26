//! A candidate identity source, as the finders write it, and the record of each one
//! tried. Plain data, below the finders, the YAML writer and the report that all use it.

use serde::Serialize;

/// A candidate source.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Its `type`.
    pub source: &'static str,
    /// What was tried, for the report (`GET /api/me`, `cookie session_token`).
    pub tried: String,
    /// Its list item of `identity.sources`, each line indented by four spaces, the
    /// first `    - type: ...`; comments say why each value was chosen.
    pub yaml: String,
    /// Why it matches, in one line (the configuration's comment above the source).
    pub why: String,
    /// The identity fields it maps besides user_id (`email`, `name`): the token's claims.
    pub claims: Vec<&'static str>,
}

/// One candidate source tried.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// The source `type`.
    pub source: &'static str,
    /// What was tried (`GET /api/me`, `cookie session_token`, `redis key sess:*`).
    pub tried: String,
    /// Whether the acceptance check accepted it.
    pub accepted: bool,
    /// Why it was accepted or rejected.
    pub why: String,
}

impl Attempt {
    /// An accepted candidate.
    pub fn accepted(source: &'static str, tried: &str, why: String) -> Attempt {
        Attempt { source, tried: tried.to_string(), accepted: true, why }
    }

    /// A rejected (or untried) candidate.
    pub fn rejected(source: &'static str, tried: &str, why: String) -> Attempt {
        Attempt { source, tried: tried.to_string(), accepted: false, why }
    }
}
