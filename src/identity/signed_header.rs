//! Identity from an assertion an identity-aware proxy in front signed into a header
//! (Cloudflare Access, Pomerium, Google IAP, AWS ALB, oauth2-proxy). Unlike
//! `trusted_header` the peer address does not matter: the signature is the proof.
//!
//! The header is removed from every request before it reaches the app, verified or
//! not, in every spelling app stacks fold to it (any punctuation, any case: see
//! `headers::FoldedName`). Verification
//! happens in the response phase (it may have to fetch keys), after the request has
//! gone upstream, so the request phase cannot know yet whether the assertion is good;
//! forwarding it would hand the app an unverified credential that many apps decode
//! without checking. The proxy now holds the identity; the app keeps its own session.

use std::sync::Arc;

use http::HeaderName;
use pingora::http::RequestHeader;

use super::jwt::{JwtVerifier, Token};
use crate::config::SignedHeaderConfig;
use crate::headers::FoldedName;

/// The `signed_header` source.
pub struct SignedHeaderSource {
    header: String,
    folded: FoldedName,
    verifier: Arc<JwtVerifier>,
}

impl SignedHeaderSource {
    /// Builds the source.
    pub fn new(config: SignedHeaderConfig) -> Self {
        SignedHeaderSource {
            folded: FoldedName::new(&config.header),
            header: config.header,
            verifier: JwtVerifier::new("signed_header", config.verify, config.fields),
        }
    }

    /// The verifier (for the response phase).
    pub fn verifier(&self) -> &JwtVerifier {
        &self.verifier
    }

    /// Removes the assertion header in every spelling and returns the assertion when
    /// it was sent exactly once in the exact spelling.
    pub fn take_assertion(&self, req: &mut RequestHeader) -> Option<Token> {
        let exact: Vec<&[u8]> =
            req.headers.get_all(self.header.as_str()).iter().map(|v| v.as_bytes()).collect();
        let value = match exact.as_slice() {
            [one] => std::str::from_utf8(one).ok().map(|v| v.trim().to_string()),
            [] => None,
            _ => {
                crate::warn_limited!(
                    "signed header {} sent more than once; no identity for this request",
                    self.header
                );
                None
            }
        };
        let doomed: Vec<HeaderName> =
            req.headers.keys().filter(|n| self.folded.matches(n.as_str())).cloned().collect();
        for name in &doomed {
            req.remove_header(name);
        }
        let value = value?;
        let token = if self.header == "authorization" {
            super::jwt::bearer(&value)?.to_string()
        } else {
            value
        };
        (!token.is_empty()).then(|| Token::new(token))
    }
}
