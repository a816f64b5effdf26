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
}

/// A path pattern where `*` matches any run of characters; otherwise exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern(String);

impl PathPattern {
    /// Parses a pattern; it must start with `/` or `*`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        if !(s.starts_with('/') || s.starts_with('*')) {
            return Err(format!("path pattern {s:?} must start with `/` (e.g. \"/password/*\")"));
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
}

pub(super) fn validate_inject(i: FileInject) -> Result<InjectConfig> {
    let content_types = i
        .content_types
        .unwrap_or_else(|| vec!["text/html".into(), "application/xhtml+xml".into()]);
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
            PathPattern::parse(p).map_err(|m| ConfigError::new(format!("inject.exclude_paths[{n}]"), m))
        })
        .collect::<Result<Vec<_>>>()?;
    let compression_level = i.compression_level.unwrap_or(5);
    if compression_level > 11 {
        return Err(ConfigError::new(
            "inject.compression_level",
            "must be 0 (off) to 11; 5 is a good balance",
        ));
    }
    let max_scan_bytes = i.max_scan_bytes.unwrap_or(1 << 20);
    if max_scan_bytes < 1024 {
        return Err(ConfigError::new(
            "inject.max_scan_bytes",
            "must be at least 1024 bytes",
        ));
    }
    let parser_memory_limit = i.parser_memory_limit.unwrap_or(256 << 10);
    if parser_memory_limit < 16 << 10 {
        return Err(ConfigError::new(
            "inject.parser_memory_limit",
            "must be at least 16384 bytes",
        ));
    }
    Ok(InjectConfig {
        content_types: content_types
            .into_iter()
            .map(|t| t.trim().to_ascii_lowercase())
            .collect(),
        exclude_paths,
        auto_include: i.auto_include,
        honor_no_transform: i.honor_no_transform.unwrap_or(true),
        max_scan_bytes,
        parser_memory_limit,
        compression_level,
    })
}
