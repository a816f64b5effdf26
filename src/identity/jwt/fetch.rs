//! GET of a key document (a JWKS, an AWS ALB PEM key) through Pingora's own client
//! connector, the one the proxy uses for its other exchanges: https with rustls and the
//! platform's CA certificates, plain http for loopback test servers. Bounded in time
//! (the caller's timeout) and in size.

use bytes::BytesMut;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;

/// Key documents larger than this are not key documents.
const MAX_BODY: usize = 256 * 1024;

/// Why a key document could not be fetched (names the URL's host, never a token).
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// The URL cannot be fetched at all.
    #[error("bad key URL: {0}")]
    Url(&'static str),
    /// The host name did not resolve.
    #[error("cannot resolve {0}")]
    Resolve(String),
    /// Connecting, sending or reading failed (a scrubbed description).
    #[error("{0}")]
    Exchange(String),
    /// Not a 2xx answer.
    #[error("status {0}")]
    Status(u16),
    /// The answer is larger than the limit.
    #[error("answer larger than {MAX_BODY} bytes")]
    TooLarge,
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// Fetches key documents; one per source, keeping its connections.
pub struct KeyFetcher {
    connector: Connector,
}

impl Default for KeyFetcher {
    fn default() -> Self {
        KeyFetcher { connector: Connector::new(None) }
    }
}

impl KeyFetcher {
    /// The body of a 2xx answer to `GET url`, within `timeout`.
    pub async fn get(
        &self,
        url: &str,
        timeout: std::time::Duration,
    ) -> Result<Vec<u8>, FetchError> {
        match tokio::time::timeout(timeout, self.get_unbounded(url)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout(timeout)),
        }
    }

    async fn get_unbounded(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let uri: http::Uri = url.parse().map_err(|_| FetchError::Url("not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(FetchError::Url("not http or https")),
        };
        let host = uri.host().ok_or(FetchError::Url("no host"))?.trim_matches(['[', ']']);
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let addr = tokio::net::lookup_host((host, port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| FetchError::Resolve(host.to_string()))?;
        let peer = HttpPeer::new(addr, tls, host.to_string());
        let exchange = |e: Box<pingora::Error>| FetchError::Exchange(crate::warn::describe(&e));
        let (mut session, _) = self.connector.get_http_session(&peer).await.map_err(exchange)?;
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut req = RequestHeader::build("GET", path.as_bytes(), None).map_err(exchange)?;
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
        for (name, value) in [
            ("host", authority),
            ("accept", "application/json, application/x-pem-file, */*"),
            ("user-agent", "intercom-secure-proxy"),
        ] {
            req.insert_header(name, value).map_err(exchange)?;
        }
        session.write_request_header(Box::new(req)).await.map_err(exchange)?;
        session.finish_request_body().await.map_err(exchange)?;
        session.read_response_header().await.map_err(exchange)?;
        let status = session.response_header().map(|h| h.status.as_u16()).unwrap_or(0);
        if !(200..300).contains(&status) {
            return Err(FetchError::Status(status));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = session.read_response_body().await.map_err(exchange)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        if session.response_done() {
            self.connector
                .release_http_session(session, &peer, Some(std::time::Duration::from_secs(60)))
                .await;
        }
        Ok(body.to_vec())
    }
}
