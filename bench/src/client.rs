//! A minimal HTTP/1.1 client: one keep-alive connection, requests written from
//! prepared bytes, responses framed by `Content-Length`. The load generator shares two
//! cores with the server, so every microsecond it spends is one the server loses;
//! this does one write and usually one read per request, and nothing else.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why an operation did not succeed; counted by its label in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server answered with an unexpected status.
    Status(u16),
    /// The connection failed (refused, reset, closed mid-response).
    Transport(io::ErrorKind),
    /// The server answered 2xx, but not with the body the protocol promises.
    Body(&'static str),
    /// No answer within the operation's time limit.
    Timeout,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(s) => write!(f, "HTTP {s}"),
            Failure::Transport(kind) => write!(f, "transport: {kind}"),
            Failure::Body(what) => write!(f, "bad body: {what}"),
            Failure::Timeout => f.write_str("timeout"),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Transport(e.kind())
    }
}

/// The bytes of one request. `Content-Length` is added for a body.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + path.len() + body.len());
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || method == "POST" {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A JSON POST.
pub fn post_json(path: &str, headers: &[(&str, &str)], body: &serde_json::Value) -> Vec<u8> {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    request("POST", path, &all, body.to_string().as_bytes())
}

/// A GET with an optional bearer token.
pub fn get(path: &str, bearer: Option<&str>) -> Vec<u8> {
    match bearer {
        Some(token) => {
            let auth = format!("Bearer {token}");
            request("GET", path, &[("authorization", &auth)], b"")
        }
        None => request("GET", path, &[], b""),
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The `name=value` of each `Set-Cookie`.
    pub cookies: Vec<String>,
}

impl Response {
    /// The value of the cookie `name` the answer sets.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find_map(|c| {
            c.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .filter(|v| !v.is_empty())
        })
    }

    /// The body as JSON when the status is `expected`; otherwise the status is the failure.
    pub fn json(&self, expected: u16) -> Result<serde_json::Value, Failure> {
        if self.status != expected {
            return Err(Failure::Status(self.status));
        }
        serde_json::from_slice(&self.body).map_err(|_| Failure::Body("not JSON"))
    }

    /// The string field `name` of a JSON body answered with `expected`.
    pub fn field(&self, expected: u16, name: &'static str) -> Result<String, Failure> {
        self.json(expected)?
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or(Failure::Body(name))
    }
}

/// One keep-alive connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The server said `Connection: close`: this connection must not be reused.
    pub closed: bool,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(8192),
            closed: false,
        })
    }

    /// Sends one request and reads its response.
    pub async fn call(&mut self, request: &[u8]) -> io::Result<Response> {
        self.stream.write_all(request).await?;
        self.recv().await
    }

    async fn recv(&mut self) -> io::Result<Response> {
        loop {
            if let Some(head) = parse_head(&self.buf)? {
                let total = head.len + head.content_length;
                while self.buf.len() < total {
                    self.fill().await?;
                }
                let body = self.buf[head.len..total].to_vec();
                self.buf.drain(..total);
                self.closed |= head.close;
                return Ok(Response {
                    status: head.status,
                    body,
                    location: head.location,
                    cookies: head.cookies,
                });
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> io::Result<()> {
        self.buf.reserve(8192);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Head {
    status: u16,
    len: usize,
    content_length: usize,
    close: bool,
    location: Option<String>,
    cookies: Vec<String>,
}

/// The status line and headers, once they are complete in `buf`.
fn parse_head(buf: &[u8]) -> io::Result<Option<Head>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(buf).map_err(|e| bad(&e.to_string()))? {
        httparse::Status::Partial => return Ok(None),
        httparse::Status::Complete(len) => len,
    };
    let mut content_length = 0;
    let mut close = false;
    let mut location = None;
    let mut cookies = Vec::new();
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            content_length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| bad("bad content-length"))?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Every Gatehouse response has a known length; chunking would mean a change
            // this client must learn about, not something to guess around.
            return Err(bad("chunked responses are not supported"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = h.value.eq_ignore_ascii_case(b"close");
        } else if h.name.eq_ignore_ascii_case("location") {
            location = std::str::from_utf8(h.value).ok().map(str::to_owned);
        } else if h.name.eq_ignore_ascii_case("set-cookie")
            && let Some(pair) = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.split(';').next())
        {
            cookies.push(pair.trim().to_owned());
        }
    }
    Ok(Some(Head {
        status: res.code.ok_or_else(|| bad("no status"))?,
        len,
        content_length,
        close,
        location,
        cookies,
    }))
}

/// A connection that reconnects on the next call after it failed or was closed.
pub struct Link {
    addr: SocketAddr,
    conn: Option<Conn>,
}

impl Link {
    pub fn new(addr: SocketAddr) -> Link {
        Link { addr, conn: None }
    }

    pub async fn call(&mut self, request: &[u8]) -> Result<Response, Failure> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => Conn::connect(self.addr).await?,
        };
        let res = conn.call(request).await?;
        if !conn.closed {
            self.conn = Some(conn);
        }
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_their_length_and_headers() {
        let r = request("POST", "/x", &[("a", "b")], b"{}");
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "POST /x HTTP/1.1\r\nhost: 127.0.0.1\r\na: b\r\ncontent-length: 2\r\n\r\n{}"
        );
        let r = get("/auth/me", Some("t0k"));
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "GET /auth/me HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer t0k\r\n\r\n"
        );
    }

    #[test]
    fn heads_are_framed_by_content_length() {
        let raw = b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!(
            (head.status, head.len, head.content_length, head.close),
            (201, raw.len() - 5, 5, true)
        );
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Le")
                .unwrap()
                .is_none()
        );
        let redirect = b"HTTP/1.1 302 Found\r\nlocation: /x?y=1\r\nset-cookie: a=1; Path=/\r\nset-cookie: b=; Max-Age=0\r\ncontent-length: 0\r\n\r\n";
        let head = parse_head(redirect).unwrap().unwrap();
        let res = Response {
            status: head.status,
            body: Vec::new(),
            location: head.location,
            cookies: head.cookies,
        };
        assert_eq!(res.location.as_deref(), Some("/x?y=1"));
        assert_eq!(res.cookie("a"), Some("1"));
        assert_eq!(res.cookie("b"), None, "a cleared cookie has no value");
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(
            parse_head(chunked).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
