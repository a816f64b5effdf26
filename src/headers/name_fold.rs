//! Header names as app stacks turn them into variable names, reduced to one rule that
//! covers them all: letters lose their case and every byte that is not a letter or
//! digit becomes one separator. PHP maps `-` and `.` to `_`, lighttpd's CGI every
//! byte but letters and digits; a name that folds to an identity header's name is that
//! header to some app, so the proxy treats it as that header.
//!
//! Each byte maps to one separator and runs are not merged: CGI keeps
//! `X__Forwarded_User` apart from `X_Forwarded_User`, and no stack is known to merge
//! them, so `X--Forwarded-User` is another header.

/// A header name folded: ASCII letters lowercase, digits kept, any other byte `_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldedName(Box<[u8]>);

impl FoldedName {
    /// Folds `name`.
    pub fn new(name: &str) -> FoldedName {
        FoldedName(name.bytes().map(fold_byte).collect())
    }

    /// Whether `name` folds to this name. Allocation-free: it runs for every header of
    /// every request.
    pub fn matches(&self, name: &str) -> bool {
        name.len() == self.0.len()
            && name.bytes().zip(self.0.iter()).all(|(b, &folded)| fold_byte(b) == folded)
    }
}

/// What a stack may read a name byte as: `_` (CGI's separator) unless a letter or digit.
fn fold_byte(b: u8) -> u8 {
    if b.is_ascii_alphanumeric() {
        b.to_ascii_lowercase()
    } else {
        b'_'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_punctuation_and_case_fold_together_but_runs_stay_apart() {
        let user = FoldedName::new("X-Forwarded-User");
        for byte in b"!#$%&'*+-.^_`|~" {
            let sep = char::from(*byte);
            for name in [format!("X{sep}Forwarded{sep}User"), format!("x{sep}FORWARDED{sep}user")] {
                assert!(user.matches(&name), "{name}");
            }
        }
        for other in [
            "X--Forwarded-User",
            "X-Forwarded-User-",
            "XForwarded-User",
            "X-Forwarded-Users",
            "X-Forwarded-Usr",
            "",
            "X-Forwarded-Usé",
        ] {
            assert!(!user.matches(other), "{other}");
        }
        assert_eq!(FoldedName::new("Remote_User"), FoldedName::new("remote.user"));
        assert!(FoldedName::new("X-Forwarded-User2").matches("x_forwarded_USER2"));
    }
}
