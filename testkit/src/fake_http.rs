//! A fake HTTP server on 127.0.0.1 for the tests of the node's clients (the CLI, the SDK): it
//! records every request's method, path and `Authorization` header, and answers each with
//! what the test's function says. One connection a request (`connection: close`).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// The `Authorization` header, if any.
    pub auth: Option<String>,
}

impl Request {
    /// The path without its query.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }
}

/// An answer: status line (`"200 OK"`), content type and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code and reason.
    pub status: &'static str,
    /// The `content-type` header.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Reply {
    /// `200 OK` with a JSON body.
    pub fn ok(body: serde_json::Value) -> Self {
        Self::new("200 OK", "application/json", body.to_string())
    }

    /// Any answer.
    pub fn new(status: &'static str, content_type: &'static str, body: String) -> Self {
        Self {
            status,
            content_type,
            body,
        }
    }
}

type Answer = dyn Fn(&Request) -> Reply + Send + Sync;

/// The server: it runs until the test process ends.
#[derive(Debug)]
pub struct FakeServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl FakeServer {
    /// Starts a server on a free port that answers every request with `answer`.
    pub fn start(answer: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let answer: Arc<Answer> = Arc::new(answer);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let (log, answer) = (log.clone(), answer.clone());
                std::thread::spawn(move || serve(conn, &log, &*answer));
            }
        });
        Self { addr, seen }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://` and its address.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests so far, and forget them.
    pub fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn serve(conn: TcpStream, log: &Mutex<Vec<Request>>, answer: &Answer) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let (mut auth, mut length) = (None, 0usize);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "authorization" => auth = Some(v.trim().to_owned()),
            "content-length" => length = v.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let request = Request { method, path, auth };
    log.lock().unwrap().push(request.clone());
    let Reply {
        status,
        content_type,
        body,
    } = answer(&request);
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}
