//! An open-loop (fixed-rate) HTTP/1.1 load generator for `scripts/bench-load.sh`.
//!
//! Each of `--connections` keep-alive connections has its own thread and its own fixed
//! schedule: request k of connection i is due at `start + i/rate + k*connections/rate`,
//! so together they send `--rate` requests per second, evenly spread. A request is sent
//! at its due time, or as soon as the connection is free when the previous answer came
//! late, and its latency is counted from the *due* time. A slow server therefore cannot
//! slow the generator down and hide its own stalls (no coordinated omission): queueing
//! shows up in the percentiles, the way a real user population would see it.
//!
//! Latencies are kept exactly (one `u64` per request) and sorted at the end, so the
//! percentiles are exact, not bucketed.
//!
//! Standard library only, so the script can build it with plain `rustc` in seconds:
//!
//! ```text
//! rustc --edition 2021 -C opt-level=3 benches/loadgen.rs -o loadgen
//! loadgen --addr 127.0.0.1:18091 --path /app.html --rate 2000 --connections 32 \
//!         --duration 5 --warmup 1 -H 'X-Forwarded-User: bench-user'
//! ```
//!
//! It prints one JSON object. Under `cargo bench` (no `--addr`) it does nothing.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Options {
    addr: SocketAddr,
    path: String,
    rate: f64,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    timeout: Duration,
    headers: Vec<String>,
}

const USAGE: &str = "usage: loadgen --addr IP:PORT --rate REQ_PER_S [--path /] [--connections 32] \
[--duration 5] [--warmup 1] [--timeout 10] [-H 'Name: value']...";

fn parse_args() -> Result<Option<Options>, String> {
    // Under `cargo bench` / `cargo test --all-targets` (no --addr; maybe libtest flags)
    // there is nothing to do.
    if !std::env::args().any(|a| a == "--addr") {
        return Ok(None);
    }
    let mut args = std::env::args().skip(1);
    let mut addr = None;
    let mut path = "/".to_string();
    let mut rate = None;
    let mut connections = 32usize;
    let mut duration = 5.0f64;
    let mut warmup = 1.0f64;
    let mut timeout = 10.0f64;
    let mut headers = Vec::new();
    let num = |name: &str, v: Option<String>| -> Result<f64, String> {
        v.ok_or(format!("{name} needs a value"))?
            .parse::<f64>()
            .map_err(|_| format!("{name} needs a number"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => {
                let v = args.next().ok_or("--addr needs a value")?;
                let a: SocketAddr =
                    v.parse().map_err(|_| format!("--addr {v:?} is not IP:PORT"))?;
                if !a.ip().is_loopback() {
                    return Err(format!("--addr {a}: only loopback targets are allowed"));
                }
                addr = Some(a);
            }
            "--path" => path = args.next().ok_or("--path needs a value")?,
            "--rate" => rate = Some(num("--rate", args.next())?),
            "--connections" | "-c" => connections = num("--connections", args.next())? as usize,
            "--duration" | "-d" => duration = num("--duration", args.next())?,
            "--warmup" => warmup = num("--warmup", args.next())?,
            "--timeout" => timeout = num("--timeout", args.next())?,
            "-H" | "--header" => headers.push(args.next().ok_or("-H needs a value")?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let Some(addr) = addr else { return Ok(None) };
    let rate = rate.ok_or("--rate is required")?;
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !positive(rate)
        || connections == 0
        || !positive(duration)
        || !warmup.is_finite()
        || warmup < 0.0
        || !positive(timeout)
    {
        return Err("--rate, --connections, --duration and --timeout must be positive".into());
    }
    Ok(Some(Options {
        addr,
        path,
        rate,
        connections,
        duration: Duration::from_secs_f64(duration),
        warmup: Duration::from_secs_f64(warmup),
        timeout: Duration::from_secs_f64(timeout),
        headers,
    }))
}

/// One keep-alive connection with a read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

const BUF: usize = 64 * 1024;
const MAX_HEAD: usize = 64 * 1024;

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// What one response was.
struct Answer {
    status: u16,
    body_bytes: u64,
    /// The server will close the connection (or did).
    closing: bool,
}

impl Conn {
    fn open(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Conn { stream, buf: vec![0; BUF], start: 0, end: 0 })
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more bytes into the buffer; `Ok(0)` at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start == 0 {
                return Err(bad("response head too large"));
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.stream.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    fn fill_or_eof(&mut self) -> io::Result<()> {
        match self.fill()? {
            0 => {
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-response"))
            }
            _ => Ok(()),
        }
    }

    /// Discards `n` body bytes.
    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        while n > 0 {
            if self.start == self.end {
                self.fill_or_eof()?;
            }
            let take = (self.end - self.start).min(n.min(usize::MAX as u64) as usize);
            self.start += take;
            n -= take as u64;
        }
        Ok(())
    }

    /// One CRLF-terminated line, without the CRLF.
    fn line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = find(self.buffered(), b"\r\n") {
                let line = self.buffered()[..i].to_vec();
                self.start += i + 2;
                return Ok(line);
            }
            if self.end - self.start > MAX_HEAD {
                return Err(bad("line too long"));
            }
            self.fill_or_eof()?;
        }
    }

    fn read_response(&mut self, head_only: bool) -> io::Result<Answer> {
        // Head.
        let head_len = loop {
            if let Some(i) = find(self.buffered(), b"\r\n\r\n") {
                break i + 4;
            }
            if self.end - self.start > MAX_HEAD {
                return Err(bad("response head too large"));
            }
            self.fill_or_eof()?;
        };
        let head = std::str::from_utf8(&self.buffered()[..head_len])
            .map_err(|_| bad("response head is not UTF-8"))?
            .to_string();
        self.start += head_len;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let keep_alive_default = status_line.starts_with("HTTP/1.1");
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut closing = !keep_alive_default;
        for l in lines {
            let Some((name, value)) = l.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => {
                    length = Some(value.parse().map_err(|_| bad("bad content-length"))?)
                }
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                "connection" => {
                    let v = value.to_ascii_lowercase();
                    if v.contains("close") {
                        closing = true;
                    } else if v.contains("keep-alive") {
                        closing = false;
                    }
                }
                _ => {}
            }
        }
        // Body.
        let mut body_bytes = 0u64;
        if head_only || status / 100 == 1 || status == 204 || status == 304 {
        } else if chunked {
            loop {
                let line = self.line()?;
                let text = std::str::from_utf8(&line).map_err(|_| bad("bad chunk size"))?;
                let hex = text.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(hex, 16).map_err(|_| bad("bad chunk size"))?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    while !self.line()?.is_empty() {}
                    break;
                }
                self.skip(size)?;
                body_bytes += size;
                if !self.line()?.is_empty() {
                    return Err(bad("chunk not followed by CRLF"));
                }
            }
        } else if let Some(n) = length {
            self.skip(n)?;
            body_bytes = n;
        } else {
            // Close-delimited.
            loop {
                body_bytes += (self.end - self.start) as u64;
                self.start = self.end;
                if self.fill()? == 0 {
                    break;
                }
            }
            closing = true;
        }
        Ok(Answer { status, body_bytes, closing })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Default)]
struct Tally {
    /// Latencies of counted requests, in nanoseconds.
    latencies: Vec<u64>,
    ok: u64,
    non_2xx: u64,
    io_errors: u64,
    body_bytes: u64,
    reconnects: u64,
    /// Requests due in the measured window that were never sent (generator overrun).
    unsent: u64,
    /// Responses received in all, warm-up included (for CPU per request).
    served: u64,
}

fn run_connection(
    opts: Arc<Options>,
    index: usize,
    request: Arc<Vec<u8>>,
    start: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let interval = Duration::from_secs_f64(opts.connections as f64 / opts.rate);
    let offset = Duration::from_secs_f64(index as f64 / opts.rate);
    let measure_from = start + opts.warmup;
    let end = measure_from + opts.duration;
    // Past this, stop waiting for late answers.
    let hard_end = end + opts.timeout;
    let mut conn: Option<Conn> = None;
    let mut k: u32 = 0;
    loop {
        let due = start + offset + interval * k;
        k += 1;
        if due >= end {
            break;
        }
        let counted = due >= measure_from;
        let now = Instant::now();
        if now >= hard_end {
            if counted {
                tally.unsent += 1;
            }
            continue;
        }
        if due > now {
            std::thread::sleep(due - now);
        }
        if conn.is_none() {
            match Conn::open(opts.addr, opts.timeout) {
                Ok(c) => {
                    conn = Some(c);
                    tally.reconnects += 1;
                }
                Err(_) => {
                    if counted {
                        tally.io_errors += 1;
                    }
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected");
        let result = c.stream.write_all(&request).and_then(|_| c.read_response(false));
        let done = Instant::now();
        match result {
            Ok(answer) => {
                tally.served += 1;
                if counted {
                    tally.latencies.push(done.duration_since(due).as_nanos() as u64);
                    tally.body_bytes += answer.body_bytes;
                    if (200..300).contains(&answer.status) {
                        tally.ok += 1;
                    } else {
                        tally.non_2xx += 1;
                    }
                }
                if answer.closing {
                    conn = None;
                }
            }
            Err(_) => {
                if counted {
                    tally.io_errors += 1;
                    // A failed request still waited this long.
                    tally.latencies.push(done.duration_since(due).as_nanos() as u64);
                }
                conn = None;
            }
        }
    }
    // The first connect is not a reconnect.
    tally.reconnects = tally.reconnects.saturating_sub(1);
    tally
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "null".into()
    }
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(Some(o)) => Arc::new(o),
        Ok(None) => {
            println!("loadgen: open-loop load generator for scripts/bench-load.sh; nothing to do without --addr");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: bench-loadgen\r\n",
        opts.path, opts.addr
    );
    for h in &opts.headers {
        request.push_str(h.trim());
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let request = Arc::new(request.into_bytes());

    // Every connection starts its schedule from the same instant, a little ahead so the
    // threads are up; each connects at its first due time.
    let start = Instant::now() + Duration::from_millis(100);
    let threads: Vec<_> = (0..opts.connections)
        .map(|i| {
            let (opts, request) = (opts.clone(), request.clone());
            std::thread::Builder::new()
                .name(format!("conn-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || run_connection(opts, i, request, start))
                .expect("spawn connection thread")
        })
        .collect();
    let mut all = Tally::default();
    for t in threads {
        let t = t.join().expect("connection thread panicked");
        all.latencies.extend_from_slice(&t.latencies);
        all.ok += t.ok;
        all.non_2xx += t.non_2xx;
        all.io_errors += t.io_errors;
        all.body_bytes += t.body_bytes;
        all.reconnects += t.reconnects;
        all.unsent += t.unsent;
        all.served += t.served;
    }
    let mut lat = all.latencies;
    lat.sort_unstable();
    let secs = opts.duration.as_secs_f64();
    let mean = if lat.is_empty() {
        f64::NAN
    } else {
        lat.iter().map(|&v| v as f64).sum::<f64>() / lat.len() as f64 / 1e6
    };
    println!(
        "{{\"target_rate\":{},\"connections\":{},\"duration_s\":{},\"requests\":{},\"ok\":{},\"non_2xx\":{},\"io_errors\":{},\"unsent\":{},\"reconnects\":{},\"served_total\":{},\"achieved_rate\":{},\"body_mb_per_s\":{},\"mean_ms\":{},\"p50_ms\":{},\"p90_ms\":{},\"p99_ms\":{},\"p999_ms\":{},\"max_ms\":{}}}",
        json_num(opts.rate),
        opts.connections,
        json_num(secs),
        all.ok + all.non_2xx,
        all.ok,
        all.non_2xx,
        all.io_errors,
        all.unsent,
        all.reconnects,
        all.served,
        json_num((all.ok + all.non_2xx) as f64 / secs),
        json_num(all.body_bytes as f64 / secs / 1e6),
        json_num(mean),
        json_num(percentile(&lat, 0.50)),
        json_num(percentile(&lat, 0.90)),
        json_num(percentile(&lat, 0.99)),
        json_num(percentile(&lat, 0.999)),
        json_num(lat.last().map_or(f64::NAN, |&v| v as f64 / 1e6)),
    );
    ExitCode::SUCCESS
}
