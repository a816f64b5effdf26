//! Runs tests/jwt/sign.py (PyJWT + cryptography, an independent token maker) with a
//! JSON spec; shared by tests/jwt_sources.rs and benches/jwt_sources.rs.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// Keys and tokens made by sign.py for `spec` (see its docstring).
pub fn sign(spec: serde_json::Value) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jwt/sign.py");
    // Debian's interpreter: python3-jwt and python3-cryptography are installed for it
    // (scripts/install-deps.sh test), whatever python3 comes first on PATH.
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (run `make test` or scripts/install-deps.sh test)");
    child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "sign.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}
