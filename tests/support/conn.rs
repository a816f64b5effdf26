//! A raw HTTP/1.x client: sees the framing exactly as the server sent it, and keeps
//! its connection for the next request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// One response as it came off the wire.
pub struct Response {
    /// "HTTP/1.0" or "HTTP/1.1", as on the status line.
    pub version: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body with the chunked framing removed (if any), still content-encoded.
    pub body: Vec<u8>,
    pub chunked: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body without its content coding (gzip is the only one these servers use).
    pub fn decoded(&self) -> Vec<u8> {
        match self.header("content-encoding") {
            None => self.body.clone(),
            Some(c) if c.eq_ignore_ascii_case("gzip") => {
                let mut out = Vec::new();
                flate2::read::MultiGzDecoder::new(&self.body[..])
                    .read_to_end(&mut out)
                    .expect("gzip body decodes");
                out
            }
            Some(c) => panic!("unexpected Content-Encoding {c}"),
        }
    }

    pub fn describe(&self) -> String {
        let head: String = self.headers.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
        format!("{} {}\n{head}", self.version, self.status)
    }
}

/// One HTTP/1.1 connection, reusable while the server keeps it open.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    host: String,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        Self::over(TcpStream::connect(addr).unwrap(), addr)
    }

    /// Opens a connection from the local address `source`: another loopback address
    /// (127.0.0.2, which Linux answers on with no setup) is a peer the server sees as a
    /// different host, outside a `127.0.0.1/32` it trusts.
    pub fn open_from(addr: SocketAddr, source: IpAddr) -> Conn {
        // std cannot bind a client socket before connecting; tokio's TcpSocket can.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
        let stream = runtime.block_on(async {
            let socket = match source {
                IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            }
            .unwrap();
            let local = SocketAddr::new(source, 0);
            socket.bind(local).unwrap_or_else(|e| panic!("cannot bind {local}: {e}"));
            let stream =
                socket.connect(addr).await.unwrap_or_else(|e| panic!("{source} -> {addr}: {e}"));
            stream.into_std().unwrap()
        });
        stream.set_nonblocking(false).unwrap();
        assert_eq!(stream.local_addr().unwrap().ip(), source);
        Self::over(stream, addr)
    }

    fn over(stream: TcpStream, addr: SocketAddr) -> Conn {
        stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        Conn {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
            host: addr.to_string(),
        }
    }

    /// Sends an HTTP/1.1 request and reads one response by its framing.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.writer.write_all(&bytes).unwrap();
        self.read_response(method == "HEAD")
    }

    /// The connection's socket (to see whether the server closed it).
    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }

    pub fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).expect("read a line");
        l.trim_end_matches(['\r', '\n']).to_string()
    }

    pub fn read_response(&mut self, head_only: bool) -> Response {
        let status_line = self.line();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("").to_string();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let l = self.line();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap_or_else(|| panic!("bad header line {l:?}"));
            headers.push((k.to_string(), v.trim().to_string()));
        }
        let mut r = Response { version, status, headers, body: Vec::new(), chunked: false };
        if head_only || matches!(status, 204 | 304) || status < 200 {
            return r;
        }
        r.chunked = r
            .header("transfer-encoding")
            .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
        if r.chunked {
            loop {
                let size_line = self.line();
                let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
                if size == 0 {
                    while !self.line().is_empty() {} // trailers
                    break;
                }
                let mut chunk = vec![0; size];
                self.reader.read_exact(&mut chunk).unwrap();
                r.body.extend_from_slice(&chunk);
                assert_eq!(self.line(), "", "chunk not followed by CRLF");
            }
        } else if let Some(len) = r.header("content-length") {
            let mut body = vec![0; len.parse().unwrap()];
            self.reader.read_exact(&mut body).unwrap();
            r.body = body;
        } else {
            self.reader.read_to_end(&mut r.body).unwrap(); // delimited by the close
        }
        r
    }
}

/// One request on a fresh connection.
pub fn fetch(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    Conn::open(addr).send(method, path, headers, body)
}
