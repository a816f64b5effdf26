//! The access log, through the real binary: one line per request, JSON that parses or
//! nginx's combined format, no query string, cookie, user or token in any line, and a
//! log file moved away (log rotation) is replaced by a new one.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{get, Proxy, Reply, Upstream, TRUSTED_HEADER};

const PAGE: &str = "<html><head><script>1</script></head><body>page</body></html>";

fn app() -> Upstream {
    Upstream::start(|r| match r.path() {
        "/missing" => Reply::with(404, &[("content-type", "text/plain")], "no"),
        "/style.css" => Reply::with(200, &[("content-type", "text/css")], "body{}"),
        _ => Reply::html(PAGE),
    })
}

fn sections(app: &Upstream, log: &Path, format: &str) -> String {
    format!(
        "log:\n  access: {}\n  format: {format}\n{}",
        log.display(),
        support::sections(app.addr, TRUSTED_HEADER, "")
    )
}

/// The app, and the proxy in front of it logging in `format` to `access.log` in the
/// directory.
fn logged_proxy(format: &str) -> (Upstream, tempfile::TempDir, Proxy) {
    let app = app();
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&sections(&app, &dir.path().join("access.log"), format));
    (app, dir, proxy)
}

/// The log's lines once it has `n` of them (the writer flushes within a second).
fn lines(log: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} lines, expected {n}:\n{text}",
            log.display(),
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn json_lines_describe_each_request_and_hold_no_secret() {
    let (app, dir, proxy) = logged_proxy("json");
    let log = dir.path().join("access.log");

    let page = get(
        &proxy.url("/page?token=QUERYSECRET"),
        &[
            ("x-forwarded-user", "alice-id-123"),
            ("cookie", "sid=COOKIEVALUE"),
            ("referer", "https://x.test/?r=REFSECRET"),
        ],
    );
    let token = support::page_token(&page.text()).expect("a token for alice");
    get(&proxy.url("/style.css"), &[]);
    get(&proxy.url("/missing"), &[]);

    let lines = lines(&log, 3);
    assert_eq!(lines.len(), 3, "one line per request: {lines:?}");
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let upstream = app.addr.to_string();
    let [page, css, missing] = &parsed[..] else { unreachable!() };
    assert_eq!(page["method"], "GET");
    assert_eq!(page["path"], "/page", "the query string is dropped");
    assert_eq!(page["status"], 200);
    assert_eq!(page["rewritten"], true);
    assert_eq!(page["identity"], "trusted_header");
    assert_eq!(page["client"], "127.0.0.1");
    assert_eq!(page["upstream"], upstream.as_str());
    assert_eq!(page["protocol"], "HTTP/1.1");
    assert!(
        page["bytes"].as_u64().unwrap() > PAGE.len() as u64,
        "the rewritten page is longer: {page}"
    );
    assert!(page["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(page["time"].as_str().unwrap().ends_with('Z'), "{page}");
    assert_eq!(css["path"], "/style.css");
    assert_eq!(css["rewritten"], false);
    assert_eq!(css["identity"], serde_json::Value::Null);
    assert_eq!(css["bytes"], 6);
    assert_eq!(missing["status"], 404);

    let text = lines.join("\n");
    for secret in
        ["QUERYSECRET", "COOKIEVALUE", "alice-id-123", "REFSECRET", token.as_str(), support::SECRET]
    {
        assert!(!text.contains(secret), "{secret:?} in the access log:\n{text}");
    }
}

#[test]
fn combined_lines_and_a_rotated_file() {
    let (_app, dir, proxy) = logged_proxy("combined");
    let log = dir.path().join("access.log");

    get(
        &proxy.url("/first?q=QUERYSECRET"),
        &[("user-agent", "probe/1.0"), ("referer", "https://x.test/from?r=REFSECRET")],
    );
    let first = lines(&log, 1);
    let line = &first[0];
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.contains(" +0000] \"GET /first HTTP/1.1\" 200 "), "{line}");
    assert!(line.ends_with(" \"https://x.test/from\" \"probe/1.0\""), "{line}");
    assert!(!line.contains("SECRET"), "{line}");

    // logrotate's default: move the file away; the proxy opens a new one.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    // The proxy notices within a second and opens a new file at the path.
    let reopened = || log.exists();
    support::wait_until("a new access log after the rotation", Duration::from_secs(5), reopened);
    get(&proxy.url("/second"), &[]);
    let fresh = lines(&log, 1);
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    assert!(fresh[0].contains("\"GET /second HTTP/1.1\""), "{fresh:?}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert_eq!(old.lines().count(), 1, "the rotated file got new lines: {old}");
}

#[test]
fn a_bad_log_setting_is_refused_with_its_key() {
    let app = app();
    let dir = tempfile::tempdir().unwrap();
    for (log, key) in [
        ("log:\n  access: relative.log\n".to_string(), "`log.access`"),
        (format!("log:\n  access: {}/nowhere/access.log\n", dir.path().display()), "`log.access`"),
        ("log:\n  format: xml\n".to_string(), "`log.format`"),
    ] {
        let conf = dir.path().join("c.yaml");
        std::fs::write(
            &conf,
            format!(
                "listen: [\"127.0.0.1:{}\"]\n{log}{}",
                support::free_port(),
                support::sections(app.addr, TRUSTED_HEADER, "")
            ),
        )
        .unwrap();
        let (code, text) =
            support::check_config_file(&conf, &[("TEST_INTERCOM_SECRET", support::SECRET)]);
        assert_eq!(code, Some(2), "{log}: {text}");
        assert!(text.contains(key), "{log}: expected {key} in {text}");
    }
}

#[test]
fn path_parameters_and_referer_userinfo_are_cut_from_both_formats() {
    let app = app();
    let dir = tempfile::tempdir().unwrap();
    for format in ["json", "combined"] {
        let log = dir.path().join(format!("{format}.log"));
        let proxy = Proxy::start(&sections(&app, &log, format));
        get(
            &proxy.url("/page;jsessionid=PATHSECRET?q=QUERYSECRET"),
            &[("referer", "https://user:PASSWORDSECRET@x.test/from;jsessionid=REFSECRET#frag")],
        );
        let line = lines(&log, 1).remove(0);
        for secret in
            ["PATHSECRET", "QUERYSECRET", "PASSWORDSECRET", "REFSECRET", "user:", "jsessionid"]
        {
            assert!(!line.contains(secret), "{format}: {secret:?} in {line}");
        }
        if format == "json" {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["path"], "/page", "{line}");
        } else {
            assert!(line.contains("\"GET /page HTTP/1.1\""), "{line}");
            assert!(line.contains(" \"https://x.test/from\" "), "{line}");
        }
    }
}

/// Sends `raw` on a connection of its own and returns all it got until the proxy closed.
fn raw_answer(proxy: &Proxy, raw: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn requests_the_parser_refused_get_a_line_with_what_is_safe() {
    let (_app, dir, proxy) = logged_proxy("json");
    let log = dir.path().join("access.log");

    let refused: [(&[u8], serde_json::Value, serde_json::Value); 3] = [
        (
            b"GET /two-hosts;jsessionid=PATHSECRET?q=QUERYSECRET HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nCookie: sid=COOKIEVALUE\r\n\r\n",
            "GET".into(),
            "/two-hosts".into(),
        ),
        (
            b"POST /conflict?q=QUERYSECRET HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\nCookie: sid=COOKIEVALUE\r\n\r\nab",
            "POST".into(),
            "/conflict".into(),
        ),
        (b"\x01\x02GARBAGE QUERYSECRET\r\nCookie: sid=COOKIEVALUE\r\n\r\n", serde_json::Value::Null, serde_json::Value::Null),
    ];
    for (i, (raw, method, path)) in refused.iter().enumerate() {
        let answer = raw_answer(&proxy, raw);
        let status = answer.lines().next().unwrap_or("");
        assert!(status.starts_with("HTTP/1.1 400"), "request {i}: {status:?}");
        let got = lines(&log, i + 1);
        let v: serde_json::Value =
            serde_json::from_str(&got[i]).unwrap_or_else(|e| panic!("not JSON ({e}): {}", got[i]));
        assert_eq!(v["status"], 400, "{v}");
        assert_eq!(&v["method"], method, "{v}");
        assert_eq!(&v["path"], path, "{v}");
        assert_eq!(v["client"], "127.0.0.1", "{v}");
        for secret in ["PATHSECRET", "QUERYSECRET", "COOKIEVALUE", "GARBAGE", "a.test"] {
            assert!(!got[i].contains(secret), "{secret:?} in {}", got[i]);
        }
    }
    // One line each, and none for a connection that closes without a request.
    drop(std::net::TcpStream::connect(proxy.addr).unwrap());
    get(&proxy.url("/after"), &[]);
    let all = lines(&log, refused.len() + 1);
    assert_eq!(all.len(), refused.len() + 1, "{all:#?}");
    assert!(all[refused.len()].contains("\"/after\""), "{all:#?}");

    // Garbage pipelined behind a good request: both answered in order, both logged.
    let both =
        raw_answer(&proxy, b"GET /first HTTP/1.1\r\nHost: a.test\r\n\r\n\x01GARBAGE\r\n\r\n");
    assert!(both.starts_with("HTTP/1.1 200") && both.contains("HTTP/1.1 400"), "{both}");
    let all = lines(&log, refused.len() + 3);
    let last: Vec<serde_json::Value> =
        all[refused.len() + 1..].iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!((&last[0]["path"], &last[0]["status"]), (&"/first".into(), &200.into()), "{all:#?}");
    assert_eq!(
        (&last[1]["path"], &last[1]["status"]),
        (&serde_json::Value::Null, &400.into()),
        "{all:#?}"
    );
}
