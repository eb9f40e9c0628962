//! A raw socket connection to an agent, for sending exact bytes.

use crate::agent::Agent;
use cryptoid_protocol::json::{self, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A raw connection to an agent's socket.
pub struct Raw {
    pub w: UnixStream,
    pub r: BufReader<UnixStream>,
}

impl Raw {
    pub fn open(agent: &Agent) -> Raw {
        let s = UnixStream::connect(agent.socket()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        Raw { w: s.try_clone().expect("clone"), r: BufReader::new(s) }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("send");
    }

    pub fn line(&mut self) -> Value {
        let mut l = String::new();
        self.r.read_line(&mut l).expect("read");
        json::from_str(&l).unwrap_or_else(|e| panic!("response {l:?}: {e}"))
    }

    /// Sends one line and returns the response.
    pub fn call(&mut self, line: &str) -> Value {
        self.send(line.as_bytes());
        self.send(b"\n");
        self.line()
    }

    /// Sends one line and returns the error it gets.
    pub fn error_of(&mut self, line: &str) -> WireError {
        error_fields(&self.call(line))
    }
}

/// An error response's fields.
#[derive(Debug)]
pub struct WireError {
    pub code: i64,
    /// `data.kind`.
    pub kind: String,
    /// `data.cause` (empty when absent).
    pub cause: String,
    pub message: String,
}

impl WireError {
    /// `(data.kind, data.cause)`, for one assertion.
    pub fn identity(&self) -> (&str, &str) {
        (&self.kind, &self.cause)
    }
}

/// The error of an error response; panics on a result.
pub fn error_fields(v: &Value) -> WireError {
    let e = v
        .as_object()
        .and_then(|o| o.get("error"))
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("not an error: {v}"));
    let data = e.get("data").and_then(Value::as_object);
    let field = |k: &str| data.and_then(|d| d.get(k)).and_then(Value::as_str).unwrap_or("").to_owned();
    WireError {
        code: e.get("code").and_then(Value::as_int).unwrap_or(0),
        kind: field("kind"),
        cause: field("cause"),
        message: e.get("message").and_then(Value::as_str).unwrap_or("").to_owned(),
    }
}
