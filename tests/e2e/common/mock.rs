//! A small local HTTP server for tests, scripted per request, that records what it was asked.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as received.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// What to answer.
pub(crate) enum Reply {
    /// Status, extra headers, body.
    Respond(u16, Vec<(String, String)>, String),
    /// Accept the request and never answer (until the server is dropped).
    Hang,
    /// Answer 200 with a body of this many bytes, one byte every 100 ms (a service that drips).
    Drip(usize),
    /// Status, extra headers, binary body.
    Bytes(u16, Vec<(String, String)>, Vec<u8>),
    /// Pass the request on to the server at this address (`127.0.0.1:PORT`) and its answer
    /// back: a recording proxy in front of a real local server.
    Forward(String),
}

impl Reply {
    /// A redirect with this status to `location`.
    pub(crate) fn redirect(status: u16, location: &str) -> Self {
        Reply::Respond(
            status,
            vec![("Location".into(), location.to_owned())],
            String::new(),
        )
    }

    /// A JSON answer with this status.
    #[allow(
        clippy::needless_pass_by_value,
        reason = "callers build the body inline with json!"
    )]
    pub(crate) fn json(status: u16, body: serde_json::Value) -> Self {
        Reply::Respond(
            status,
            vec![("Content-Type".into(), "application/json".into())],
            body.to_string(),
        )
    }
}

type Handler = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// A running server; stops when dropped.
pub(crate) struct MockServer {
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    done: Arc<AtomicBool>,
}

impl MockServer {
    /// A server that answers every request with a redirect to `location`.
    pub(crate) fn redirecting(status: u16, location: String) -> MockServer {
        MockServer::start(move |_, _| Reply::redirect(status, &location))
    }

    /// Starts a server calling `handler(request, index of the request from 0)`.
    pub(crate) fn start(
        handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let requests = requests.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let requests = requests.clone();
                            let done = done.clone();
                            let handler = handler.clone();
                            std::thread::spawn(move || serve(stream, &requests, &done, &*handler));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Self {
            url,
            requests,
            done,
        }
    }

    /// Every request received so far.
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

fn serve(stream: TcpStream, requests: &Mutex<Vec<Request>>, done: &AtomicBool, handler: &Handler) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    // one request per connection is enough for these clients: answer with Connection: close
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request = Request {
        method,
        path,
        headers,
        body,
    };
    let index = {
        let mut all = requests.lock().unwrap();
        all.push(request.clone());
        all.len() - 1
    };
    match handler(&request, index) {
        Reply::Hang => {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Reply::Drip(length) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
            );
            let _ = writer.write_all(head.as_bytes());
            let _ = writer.flush();
            for _ in 0..length {
                if done.load(Ordering::Relaxed) || writer.write_all(b" ").is_err() {
                    return;
                }
                let _ = writer.flush();
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Reply::Respond(status, extra, body) => {
            respond(&mut writer, status, &extra, body.as_bytes());
        }
        Reply::Bytes(status, extra, body) => respond(&mut writer, status, &extra, &body),
        Reply::Forward(address) => forward(&mut writer, &request, &address),
    }
}

/// Sends `request` to the server at `address` (one request, connection closed) and copies its
/// whole answer back.
fn forward(writer: &mut impl Write, request: &Request, address: &str) {
    let Ok(mut upstream) = TcpStream::connect(address) else {
        respond(writer, 502, &[], b"the upstream server is not there");
        return;
    };
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
    for (name, value) in &request.headers {
        if !name.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut answer = Vec::new();
    if upstream.write_all(head.as_bytes()).is_err()
        || upstream.write_all(&request.body).is_err()
        || upstream.read_to_end(&mut answer).is_err()
    {
        respond(writer, 502, &[], b"the upstream server failed");
        return;
    }
    let _ = writer.write_all(&answer);
    let _ = writer.flush();
}

/// Writes a whole answer.
fn respond(writer: &mut impl Write, status: u16, extra: &[(String, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = writer.write_all(head.as_bytes());
    let _ = writer.write_all(body);
    let _ = writer.flush();
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
