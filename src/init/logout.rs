//! The app's logout: a link or form whose path or text says log out / sign out.

use serde::Serialize;

use super::browser::Link;

/// Words of a logout, compared with letters and digits only, lowercase.
const WORDS: [&str; 4] = ["logout", "signout", "logoff", "signoff"];

/// The logout found on the pages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Logout {
    /// Its path.
    pub path: String,
    /// The method a browser uses for it (`GET` for a link, the form's otherwise).
    pub method: String,
    /// Why it was chosen (the configuration's comment).
    pub why: String,
}

impl Logout {
    /// The `logout.paths` rule.
    pub fn path_rule(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The first link or form that says it logs out and whose path the configuration
/// can hold (letters, digits and `/-_.~` only).
pub fn find(links: &[Link]) -> Option<Logout> {
    let says = |s: &str| {
        let folded: String =
            s.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase();
        WORDS.iter().any(|w| folded.contains(w))
    };
    let writable = |p: &str| {
        p.starts_with('/')
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b))
            && !p.contains("//")
    };
    let link = links.iter().find(|l| writable(&l.path) && (says(&l.path) || says(&l.text)))?;
    let (method, what) = match &link.method {
        Some(m) => (m.clone(), "form"),
        None => ("GET".to_string(), "link"),
    };
    Some(Logout {
        why: format!("the pages' {what} {:?} goes to {method} {}", link.text, link.path),
        path: link.path.clone(),
        method,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(path: &str, text: &str, method: Option<&str>) -> Link {
        Link { path: path.into(), text: text.into(), method: method.map(Into::into) }
    }

    #[test]
    fn logouts_by_path_or_text() {
        let links = [
            link("/account", "Account", None),
            link("/session/end", "Sign out", Some("POST")),
            link("/logout", "Bye", None),
        ];
        let found = find(&links).unwrap();
        assert_eq!(
            (found.path_rule().as_str(), found.why.contains("form")),
            ("POST /session/end", true)
        );
        assert_eq!(find(&links[2..]).unwrap().path_rule(), "GET /logout");
        assert_eq!(find(&[link("/users/sign_out", "", None)]).unwrap().path, "/users/sign_out");
        assert!(
            find(&[link("/log%20out", "Log out", None), link("/about", "About", None)]).is_none()
        );
    }
}
