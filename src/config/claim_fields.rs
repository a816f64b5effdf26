//! Which of `intercom.claims` each identity source can fill. A source fills a claim when
//! its configuration maps a field to it (`fields` of an endpoint, a Redis session or a
//! JWT, `headers` of trusted_header); the identity it finds never holds anything else,
//! so a token carries `user_id` and exactly those of the claims the user has a value for.
//! `check` lists them per source and warns about the others, saying what then becomes
//! of a page's own plain value of the claim.

use super::*;

/// Claims that identify the user: a page's plain value of these is always removed, so
/// only the token (or the proxy's own `user_hash`) can say who the user is.
const IDENTIFYING_FIELDS: &[&str] = &["user_id", "email", "user_hash"];

impl SourceConfig {
    /// The source's `type` in the config file.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::TrustedHeader(_) => "trusted_header",
            SourceConfig::CurrentUserEndpoint(_) => "current_user_endpoint",
            SourceConfig::RedisSession(_) => "redis_session",
            SourceConfig::JwtCookie(_) => "jwt_cookie",
            SourceConfig::SignedHeader(_) => "signed_header",
        }
    }

    /// Whether the source maps a field to `claim` (`email`, `name` or an attribute).
    pub fn fills(&self, claim: &str) -> bool {
        match self {
            SourceConfig::TrustedHeader(t) => maps(&t.email, &t.name, &[], claim),
            SourceConfig::CurrentUserEndpoint(e) => e.fills(claim),
            SourceConfig::RedisSession(r) => r.fields.maps(claim),
            SourceConfig::JwtCookie(j) => j.fields.maps(claim),
            SourceConfig::SignedHeader(s) => s.fields.maps(claim),
        }
    }

    /// The key under which the source maps its fields.
    fn mapping_key(&self) -> &'static str {
        match self {
            SourceConfig::TrustedHeader(_) => "headers",
            _ => "fields",
        }
    }
}

impl EndpointConfig {
    /// Whether the endpoint source maps a field to `claim` (see [`SourceConfig::fills`]).
    pub fn fills(&self, claim: &str) -> bool {
        self.fields.maps(claim)
    }
}

impl FieldPointers {
    /// Whether these fields fill `claim` (see [`SourceConfig::fills`]).
    fn maps(&self, claim: &str) -> bool {
        maps(&self.email, &self.name, &self.attributes, claim)
    }
}

/// Whether a source with these mappings fills `claim`.
fn maps(
    email: &Option<String>,
    name: &Option<String>,
    attributes: &[(String, String)],
    claim: &str,
) -> bool {
    match claim {
        "email" => email.is_some(),
        "name" => name.is_some(),
        other => attributes.iter().any(|(a, _)| a == other),
    }
}

impl SiteConfig {
    /// What a token carries for users `source` finds: `user_id` and the configured
    /// claims the source fills.
    pub(super) fn signed_by<'a>(&'a self, source: &SourceConfig) -> Vec<&'a str> {
        std::iter::once("user_id")
            .chain(self.intercom.claims.iter().map(String::as_str).filter(|c| source.fills(c)))
            .collect()
    }

    /// One warning per configured claim a source cannot fill, in the JWT modes (in
    /// `user_hash` mode nothing is signed).
    pub(super) fn unfilled_claim_warnings(&self, prefix: &str, out: &mut Vec<String>) {
        if self.intercom.mode == MessengerMode::UserHash {
            return;
        }
        for (n, source) in self.identity.sources.iter().enumerate() {
            for claim in self.intercom.claims.iter().filter(|c| !source.fills(c)) {
                let key = format!("{prefix}identity.sources[{n}]");
                let attribute =
                    if matches!(claim.as_str(), "email" | "name") { "" } else { "attributes." };
                let fix = match source {
                    SourceConfig::TrustedHeader(_) if !attribute.is_empty() => {
                        "trusted_header has no attributes; drop it from intercom.claims if no other source is meant to fill it".to_string()
                    }
                    _ => format!("map it under {key}.{}.{attribute}{claim}, or drop it from intercom.claims", source.mapping_key()),
                };
                out.push(format!(
                    "claim \"{claim}\" has no field in source {} ({key}): tokens for the users it finds carry no {claim} and {} ({fix})",
                    source.kind(),
                    plain_value_fate(claim)
                ));
            }
        }
    }
}

/// What becomes of a page's plain value of a claim the token does not carry.
fn plain_value_fate(claim: &str) -> String {
    if IDENTIFYING_FIELDS.contains(&claim) {
        format!("the page's plain {claim} is removed all the same, so Intercom gets none")
    } else {
        format!("the page's plain {claim} is kept")
    }
}
