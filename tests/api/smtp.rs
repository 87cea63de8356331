//! A real SMTP server on a loopback port, for the tests: it speaks enough ESMTP for
//! lettre (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT), keeps every message
//! and every AUTH it accepts, and can be stopped and started again on the same port,
//! connections and all.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// A message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and body, dot-stuffing removed).
    pub data: String,
}

impl Received {
    /// The message with quoted-printable soft breaks and escapes decoded.
    pub fn decoded(&self) -> String {
        let bytes =
            quoted_printable::decode(self.data.as_bytes(), quoted_printable::ParseMode::Robust)
                .unwrap_or_else(|_| self.data.clone().into_bytes());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn subject(&self) -> String {
        self.data
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or_default()
            .to_owned()
    }

    /// The subject with its folded lines joined and its encoded words (RFC 2047, as
    /// lettre writes non-ASCII subjects: `=?utf-8?b?…?=`) decoded.
    pub fn decoded_subject(&self) -> String {
        use base64::Engine;
        let mut lines = self
            .data
            .lines()
            .skip_while(|l| !l.starts_with("Subject: "));
        let mut raw = lines.next().unwrap_or_default()["Subject: ".len()..].to_owned();
        for more in lines.take_while(|l| l.starts_with([' ', '\t'])) {
            raw.push_str(more);
        }
        let mut subject = String::new();
        let mut last_encoded = false;
        for word in raw.split_whitespace() {
            let lower = word.to_ascii_lowercase();
            let encoded = lower.starts_with("=?utf-8?b?") && word.ends_with("?=");
            if encoded {
                let b64 = &word["=?utf-8?b?".len()..word.len() - 2];
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .expect("an encoded word of the subject");
                if !subject.is_empty() && !last_encoded {
                    subject.push(' ');
                }
                subject.push_str(&String::from_utf8(bytes).unwrap());
            } else {
                assert!(!word.starts_with("=?"), "an encoding not read here: {word}");
                if !subject.is_empty() {
                    subject.push(' ');
                }
                subject.push_str(word);
            }
            last_encoded = encoded;
        }
        subject
    }

    /// The first link in the message that starts with `prefix`, up to its token's end.
    pub fn link(&self, prefix: &str) -> Option<String> {
        let text = self.decoded();
        let start = text.find(prefix)?;
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || c == '"' || c == '<')
            .map_or(text.len(), |i| start + i);
        Some(text[start..end].to_owned())
    }
}

#[derive(Default)]
struct Inbox {
    messages: Mutex<Vec<Received>>,
    /// The initial responses of `AUTH PLAIN` (base64 of `\0user\0password`), as sent.
    auths: Mutex<Vec<String>>,
    arrived: Notify,
}

pub struct SmtpServer {
    pub addr: SocketAddr,
    inbox: Arc<Inbox>,
    running: Option<JoinSet<()>>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut server = SmtpServer {
            addr,
            inbox: Arc::default(),
            running: None,
        };
        server.serve(listener);
        server
    }

    /// A server on a free port that is not listening yet (see [`SmtpServer::resume`]).
    pub async fn stopped() -> SmtpServer {
        let mut server = SmtpServer::start().await;
        server.stop();
        server
    }

    /// `mail.smtp_url` for this server (no TLS: it is on loopback).
    pub fn url(&self) -> String {
        format!("smtp://{}?tls=none", self.addr)
    }

    /// Closes the listener and every open connection.
    pub fn stop(&mut self) {
        if let Some(mut tasks) = self.running.take() {
            tasks.abort_all();
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&mut self) {
        // The stopped listener closes as its task is dropped, which may be a moment.
        for _ in 0..100 {
            if let Ok(listener) = TcpListener::bind(self.addr).await {
                return self.serve(listener);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("port {} stayed busy", self.addr.port());
    }

    fn serve(&mut self, listener: TcpListener) {
        let inbox = Arc::clone(&self.inbox);
        let mut tasks = JoinSet::new();
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let held = Arc::clone(&connections);
        tasks.spawn(async move {
            // Keeps the connections' tasks alive as long as the accept loop.
            let _held = held;
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let inbox = Arc::clone(&inbox);
                connections
                    .lock()
                    .unwrap()
                    .spawn(async move { session(stream, inbox).await });
            }
        });
        self.running = Some(tasks);
    }

    /// What each `AUTH PLAIN` carried, as sent (base64).
    pub fn auths(&self) -> Vec<String> {
        self.inbox.auths.lock().unwrap().clone()
    }

    pub fn received(&self) -> Vec<Received> {
        self.inbox.messages.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages have arrived (at most `limit`), and returns
    /// them all.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let arrived = self.inbox.arrived.notified();
            let messages = self.received();
            if messages.len() >= n {
                return messages;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let messages = self.received();
                assert!(
                    messages.len() >= n,
                    "{} of {n} messages arrived within {limit:?}",
                    messages.len()
                );
                return messages;
            }
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn session(stream: TcpStream, inbox: Arc<Inbox>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if write
        .write_all(b"220 localhost ESMTP test\r\n")
        .await
        .is_err()
    {
        return;
    }
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-localhost\r\n250-8BITMIME\r\n250-AUTH PLAIN\r\n250 SMTPUTF8\r\n",
            "AUTH" => match command.split(' ').collect::<Vec<_>>()[..] {
                [_, mechanism, response] if mechanism.eq_ignore_ascii_case("PLAIN") => {
                    inbox.auths.lock().unwrap().push(response.to_owned());
                    b"235 2.7.0 Authentication successful\r\n"
                }
                _ => b"504 5.5.4 Unrecognized authentication type\r\n",
            },
            "HELO" | "NOOP" => b"250 OK\r\n",
            "RSET" => {
                (from, to) = (String::new(), Vec::new());
                b"250 OK\r\n"
            }
            "MAIL" => {
                from = address(&command);
                b"250 OK\r\n"
            }
            "RCPT" => {
                to.push(address(&command));
                b"250 OK\r\n"
            }
            "DATA" => {
                if write.write_all(b"354 go ahead\r\n").await.is_err() {
                    return;
                }
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                let message = Received {
                    from: std::mem::take(&mut from),
                    to: std::mem::take(&mut to),
                    data,
                };
                inbox.messages.lock().unwrap().push(message);
                inbox.arrived.notify_waiters();
                b"250 OK queued\r\n"
            }
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"502 not implemented\r\n",
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// The address in `MAIL FROM:<a>` or `RCPT TO:<a>`.
fn address(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..]
        .find('>')
        .map_or(command.len(), |i| start + i);
    command[start..end].to_owned()
}
