//! A loopback HTTP/1.1 server for list-source tests: serves one programmable response and
//! records every request's head, so tests can check conditional requests (If-None-Match).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::TcpListener,
    sync::{Arc, Mutex},
};

/// What the server answers next.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub etag: Option<String>,
}

pub struct HttpServer {
    pub port: u16,
    reply: Arc<Mutex<Reply>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl HttpServer {
    /// Listens on 127.0.0.1 (an ephemeral port) in a background thread.
    pub fn start(reply: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        let reply = Arc::new(Mutex::new(reply));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (r, q) = (reply.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let mut head = String::new();
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    head.push_str(&line);
                    line.clear();
                }
                let reply = r.lock().expect("reply lock").clone();
                let conditional_hit = reply.etag.as_ref().is_some_and(|etag| {
                    head.lines().any(|l| {
                        l.to_ascii_lowercase().starts_with("if-none-match:")
                            && l.contains(etag.as_str())
                    })
                });
                q.lock().expect("requests lock").push(head);
                let (status, body) = if conditional_hit && reply.status == 200 {
                    (304, String::new())
                } else {
                    (reply.status, reply.body.clone())
                };
                let etag = reply
                    .etag
                    .as_ref()
                    .map(|e| format!("ETag: {e}\r\n"))
                    .unwrap_or_default();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{etag}Connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self {
            port,
            reply,
            requests,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set(&self, reply: Reply) {
        *self.reply.lock().expect("reply lock") = reply;
    }

    /// The heads of the requests received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests lock").clone()
    }
}
