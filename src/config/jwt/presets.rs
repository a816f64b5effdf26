//! The `preset` of a `signed_header` source: what each identity-aware proxy signs,
//! into which header, with which algorithm, and what must be pinned.

use jsonwebtoken::Algorithm;

/// The identity-aware proxies `signed_header` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Cloudflare Access (`Cf-Access-Jwt-Assertion`, RS256).
    CloudflareAccess,
    /// Pomerium (`X-Pomerium-Jwt-Assertion`, ES256).
    Pomerium,
    /// Google Cloud IAP (`x-goog-iap-jwt-assertion`, ES256).
    GoogleIap,
    /// AWS Application Load Balancer (`x-amzn-oidc-data`, ES256, ALB's own format).
    AwsAlb,
    /// oauth2-proxy (`Authorization: Bearer <id_token>`, the IdP's keys).
    Oauth2Proxy,
    /// Nothing filled in: header, algorithms and keys are all given.
    None,
}

impl Preset {
    /// Every preset, `none` last.
    pub const ALL: [Preset; 6] = [
        Preset::CloudflareAccess,
        Preset::Pomerium,
        Preset::GoogleIap,
        Preset::AwsAlb,
        Preset::Oauth2Proxy,
        Preset::None,
    ];

    /// The name used in the file.
    pub fn name(self) -> &'static str {
        match self {
            Preset::CloudflareAccess => "cloudflare_access",
            Preset::Pomerium => "pomerium",
            Preset::GoogleIap => "google_iap",
            Preset::AwsAlb => "aws_alb",
            Preset::Oauth2Proxy => "oauth2_proxy",
            Preset::None => "none",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The header this proxy signs into, if the preset names one.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Preset::CloudflareAccess => Some("cf-access-jwt-assertion"),
            Preset::Pomerium => Some("x-pomerium-jwt-assertion"),
            Preset::GoogleIap => Some("x-goog-iap-jwt-assertion"),
            Preset::AwsAlb => Some("x-amzn-oidc-data"),
            Preset::Oauth2Proxy => Some("authorization"),
            Preset::None => None,
        }
    }

    /// The algorithm this proxy signs with (oauth2-proxy passes the IdP's, RS256 for most).
    pub fn algorithms(self) -> Vec<Algorithm> {
        match self {
            Preset::CloudflareAccess | Preset::Oauth2Proxy => vec![Algorithm::RS256],
            Preset::Pomerium | Preset::GoogleIap | Preset::AwsAlb => vec![Algorithm::ES256],
            Preset::None => Vec::new(),
        }
    }

    /// Whether a token without the right audience could come from another app behind
    /// the same proxy: then `audience` is required.
    pub fn needs_audience(self) -> bool {
        matches!(self, Preset::CloudflareAccess | Preset::GoogleIap | Preset::Oauth2Proxy)
    }
}
