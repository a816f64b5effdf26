//! `inject`: which responses are rewritten, and path patterns.

use super::*;

/// Which responses are rewritten, and how.
#[derive(Debug, Clone)]
pub struct InjectConfig {
    /// Media types rewritten (lowercase, no parameters).
    pub content_types: Vec<String>,
    /// Path patterns never touched (`*` matches any run of characters).
    pub exclude_paths: Vec<PathPattern>,
    /// Add the official loader to pages that have no Intercom code.
    pub auto_include: bool,
    /// Leave `Cache-Control: no-transform` responses alone.
    pub honor_no_transform: bool,
    /// Give up looking for the insertion point after this many body bytes.
    pub max_scan_bytes: usize,
    /// Memory bound of the HTML parser per response.
    pub parser_memory_limit: usize,
    /// gzip/brotli level used to re-compress rewritten pages (0 = send uncompressed).
    pub compression_level: u32,
    /// The path the proxy answers itself with a fresh token for open pages.
    pub token_refresh_path: String,
    /// What a page gets when the proxy cannot tell who its user is.
    pub on_identity_failure: OnIdentityFailure,
    /// Give logged-out visitors' pages the watcher script (the same bytes for everyone),
    /// which keeps a plain identity from a login the proxy did not see from the Messenger.
    pub watch_logged_out: bool,
}

/// `inject.on_identity_failure`: what a page gets when a source is slow or failing, or
/// cannot read the session (the page is served in every case).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnIdentityFailure {
    /// The script without a token: it strips the plain identity, holds the Messenger's
    /// boot and asks the refresh path, booting with the token if one comes in time.
    #[default]
    Defer,
    /// The script without a token: the Messenger boots without identity.
    Strip,
    /// The page as the app sent it, plain identity included (insecure).
    Pass,
}

impl OnIdentityFailure {
    /// What a page gets, for warnings.
    pub fn describe(self) -> &'static str {
        match self {
            OnIdentityFailure::Defer => "the Messenger held until the refresh path knows the user",
            OnIdentityFailure::Strip => "the plain identity stripped",
            OnIdentityFailure::Pass => {
                "the page as the app sent it, plain identity included (on_identity_failure: pass)"
            }
        }
    }
}

/// Default of `inject.content_types`: the two HTML media types.
pub const DEFAULT_CONTENT_TYPES: &[&str] = &["text/html", "application/xhtml+xml"];
/// Default of `inject.honor_no_transform` (RFC 9111: intermediaries must not transform such content).
pub const DEFAULT_HONOR_NO_TRANSFORM: bool = true;
/// Default of `inject.max_scan_bytes` (1 MiB; the insertion point is the first `<script>`,
/// `</head>` or `<body>`, normally far earlier).
pub const DEFAULT_MAX_SCAN_BYTES: usize = 1 << 20;
/// Smallest `inject.max_scan_bytes` accepted.
pub const MIN_MAX_SCAN_BYTES: usize = 1024;
/// Default of `inject.parser_memory_limit` (256 KiB).
pub const DEFAULT_PARSER_MEMORY_LIMIT: usize = 256 << 10;
/// Smallest `inject.parser_memory_limit` accepted (16 KiB).
pub const MIN_PARSER_MEMORY_LIMIT: usize = 16 << 10;
/// Default of `inject.compression_level` (a good balance of CPU time and size).
pub const DEFAULT_COMPRESSION_LEVEL: u32 = 5;
/// Default of `inject.watch_logged_out`.
pub const DEFAULT_WATCH_LOGGED_OUT: bool = true;
/// Default of `inject.token_refresh_path` (answered by the proxy, never forwarded).
pub const DEFAULT_TOKEN_REFRESH_PATH: &str = "/__isp/token";
/// Largest `inject.compression_level` accepted.
pub const MAX_COMPRESSION_LEVEL: u32 = 11;

impl Default for InjectConfig {
    /// What an empty `inject:` section validates to: the HTML types, no exclusions,
    /// no auto-include, and the default limits.
    fn default() -> Self {
        InjectConfig {
            content_types: DEFAULT_CONTENT_TYPES.iter().map(|t| t.to_string()).collect(),
            exclude_paths: Vec::new(),
            auto_include: false,
            honor_no_transform: DEFAULT_HONOR_NO_TRANSFORM,
            max_scan_bytes: DEFAULT_MAX_SCAN_BYTES,
            parser_memory_limit: DEFAULT_PARSER_MEMORY_LIMIT,
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            token_refresh_path: DEFAULT_TOKEN_REFRESH_PATH.to_string(),
            on_identity_failure: OnIdentityFailure::default(),
            watch_logged_out: DEFAULT_WATCH_LOGGED_OUT,
        }
    }
}

/// A path pattern that does not start with `/` or `*`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path pattern {0:?} must start with `/` (e.g. \"/password/*\")")]
pub struct BadPattern(pub String);

/// A path pattern where `*` matches any run of characters; otherwise exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern(String);

impl PathPattern {
    /// Parses a pattern; it must start with `/` or `*`.
    pub fn parse(s: &str) -> std::result::Result<Self, BadPattern> {
        if !(s.starts_with('/') || s.starts_with('*')) {
            return Err(BadPattern(s.to_string()));
        }
        Ok(PathPattern(s.to_string()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `path` (without query) matches.
    pub fn matches(&self, path: &str) -> bool {
        glob_match(self.0.as_bytes(), path.as_bytes())
    }
}

/// `*`-only glob matching, iterative with single backtrack point (linear time).
fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if p < pat.len() && pat[p] == s[i] {
            p += 1;
            i += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileInject {
    content_types: Option<Vec<String>>,
    #[serde(default)]
    exclude_paths: Vec<String>,
    #[serde(default)]
    auto_include: bool,
    honor_no_transform: Option<bool>,
    max_scan_bytes: Option<usize>,
    parser_memory_limit: Option<usize>,
    compression_level: Option<u32>,
    token_refresh_path: Option<String>,
    on_identity_failure: Option<OnIdentityFailure>,
    watch_logged_out: Option<bool>,
}

pub(super) fn validate_inject(i: FileInject) -> Result<InjectConfig> {
    let content_types = i
        .content_types
        .unwrap_or_else(|| DEFAULT_CONTENT_TYPES.iter().map(|t| t.to_string()).collect());
    for (n, t) in content_types.iter().enumerate() {
        if !t.contains('/') || t.contains(';') {
            return Err(ConfigError::new(
                format!("inject.content_types[{n}]"),
                format!("{t:?} is not a media type without parameters, e.g. text/html"),
            ));
        }
    }
    let exclude_paths = i
        .exclude_paths
        .iter()
        .enumerate()
        .map(|(n, p)| {
            PathPattern::parse(p)
                .map_err(|e| ConfigError::new(format!("inject.exclude_paths[{n}]"), e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let compression_level = i.compression_level.unwrap_or(DEFAULT_COMPRESSION_LEVEL);
    if compression_level > MAX_COMPRESSION_LEVEL {
        return Err(ConfigError::new(
            "inject.compression_level",
            format!("must be 0 (off) to {MAX_COMPRESSION_LEVEL}; {DEFAULT_COMPRESSION_LEVEL} is a good balance"),
        ));
    }
    let max_scan_bytes = i.max_scan_bytes.unwrap_or(DEFAULT_MAX_SCAN_BYTES);
    if max_scan_bytes < MIN_MAX_SCAN_BYTES {
        return Err(ConfigError::new(
            "inject.max_scan_bytes",
            format!("must be at least {MIN_MAX_SCAN_BYTES} bytes"),
        ));
    }
    let parser_memory_limit = i.parser_memory_limit.unwrap_or(DEFAULT_PARSER_MEMORY_LIMIT);
    if parser_memory_limit < MIN_PARSER_MEMORY_LIMIT {
        return Err(ConfigError::new(
            "inject.parser_memory_limit",
            format!("must be at least {MIN_PARSER_MEMORY_LIMIT} bytes"),
        ));
    }
    let token_refresh_path =
        i.token_refresh_path.unwrap_or_else(|| DEFAULT_TOKEN_REFRESH_PATH.to_string());
    if !is_plain_path(&token_refresh_path) {
        return Err(ConfigError::new(
            "inject.token_refresh_path",
            format!("{token_refresh_path:?} is not a plain path; write one the app does not use, e.g. {DEFAULT_TOKEN_REFRESH_PATH}"),
        ));
    }
    Ok(InjectConfig {
        token_refresh_path,
        content_types: content_types.into_iter().map(|t| t.trim().to_ascii_lowercase()).collect(),
        exclude_paths,
        auto_include: i.auto_include,
        honor_no_transform: i.honor_no_transform.unwrap_or(DEFAULT_HONOR_NO_TRANSFORM),
        max_scan_bytes,
        parser_memory_limit,
        compression_level,
        on_identity_failure: i.on_identity_failure.unwrap_or_default(),
        watch_logged_out: i.watch_logged_out.unwrap_or(DEFAULT_WATCH_LOGGED_OUT),
    })
}

/// A path starting with `/`, without query, fragment, pattern or characters that need
/// escaping in a script (it is written into the page script), and as browsers send it:
/// no empty or dot segments, which a browser's fetch would normalise into another path.
pub(super) fn is_plain_path(p: &str) -> bool {
    p.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b)) && is_as_browsers_send(p)
}

/// A path (or path pattern) as a browser sends it: starting with `/`, with no query,
/// fragment or `%`-encoding, and no empty or dot segments, which a browser normalises
/// away, so that a request for it can never arrive.
pub(crate) fn is_as_browsers_send(p: &str) -> bool {
    p.len() > 1
        && p.starts_with('/')
        && !p.bytes().any(|b| matches!(b, b'?' | b'#' | b'%'))
        && p[1..].split('/').all(|seg| !matches!(seg, "" | "." | ".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_the_proxy_answers_are_what_a_browser_sends() {
        for ok in ["/__isp/token", "/a.b/c~d", "/x"] {
            assert!(is_plain_path(ok), "{ok}");
        }
        for bad in ["/../x", "/a/./b", "/a/..", "//x", "/a//b", "/a/", "/a%2e", "/a?b", "x", "/"] {
            assert!(!is_plain_path(bad), "{bad}");
        }
    }

    #[test]
    fn default_matches_an_empty_section() {
        let validated = validate_inject(FileInject::default()).unwrap();
        assert_eq!(format!("{:?}", InjectConfig::default()), format!("{validated:?}"));
    }
}
