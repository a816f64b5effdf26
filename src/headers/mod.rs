//! HTTP helpers, one place for each: reading requests (host, cookies, what a request
//! is for), framing messages, the response headers the proxy changes, and header names
//! as app stacks fold them.

mod framing;
mod name_fold;
mod request;
mod response;

pub use framing::{content_length_fix, fit_framing, LengthFix};
pub use name_fold::FoldedName;
pub use request::{
    check_request, cookie, cookie_host, cookie_name_value, cookie_pairs, cookie_values,
    host_without_port, is_navigation, is_soft_navigation, may_be_document, BadRequest, CookieValue,
};
pub use response::{
    body_length, charset, content_encoding, has_directive, make_private, names_charset,
    remove_body_dependent, replace_body,
};
