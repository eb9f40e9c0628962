//! The agent's wire protocol: JSON-RPC 2.0, one UTF-8 JSON object per line
//! (NDJSON), at most [`MAX_LINE`] bytes a line, over a UNIX socket.
//!
//! Every method is a type implementing [`Method`] (its name, params and
//! result), one file per method family. Requests are parsed with the strict
//! parser, so duplicate keys, floats and oversized integers are refused
//! anywhere in a request, then read into the typed params.

pub mod agent;
pub mod backend;
pub mod confirm;
pub mod error;
pub mod journal;
pub mod keys;
pub mod otk;
pub mod policy;
pub mod rooms;
pub mod share;
pub mod sign;

use crate::json::{self, Object, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use error::{ErrorKind, RpcError};

/// Version of this wire protocol, reported by `agent.hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line the agent reads, newline excluded: 16 MiB. This
/// protects the agent from its clients, and still takes a `share.import`
/// of 10,000 rooms (about 3 MB) with room to spare for long room IDs.
pub const MAX_LINE: usize = 16 << 20;

/// Longest response line a client reads: 64 MiB. Answers come from the
/// trusted agent and can be large (`keys.list` of 10,000 keys is ~3 MiB).
pub const MAX_RESPONSE_LINE: usize = 64 << 20;

/// A method: its name on the wire and its parameter and result types.
pub trait Method {
    const NAME: &'static str;
    /// The params hold a secret (a passphrase, a PIN, a recovery key): a
    /// decoding error must not quote them (they would reach the journal).
    const SECRET_PARAMS: bool = false;
    type Params: Serialize + DeserializeOwned;
    type Result: Serialize + DeserializeOwned;
}

/// A method that takes no parameters (`{}` on the wire).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// A request as read off the wire, with its params still untyped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: Value,
    pub method: String,
    pub params: Value,
}

/// A request line that is not a valid request; `id` is the request's ID when
/// it could be read, for the error response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRequest {
    pub id: Value,
    pub error: RpcError,
}

/// Parses one request line (without its newline).
pub fn decode_request(line: &[u8]) -> Result<Request, BadRequest> {
    let bad = |id: Value, error: RpcError| BadRequest { id, error };
    let value = json::from_slice(line).map_err(|e| {
        let error = RpcError::new(ErrorKind::ParseError, format!("malformed JSON: {e}"));
        bad(Value::Null, error.with_cause(e.kind.name()))
    })?;
    let Value::Object(mut obj) = value else {
        return Err(bad(
            Value::Null,
            RpcError::new(ErrorKind::InvalidRequest, "a request must be a JSON object")
                .with_cause("not_an_object"),
        ));
    };
    let id = obj.remove("id").unwrap_or(Value::Null);
    if !matches!(id, Value::String(_) | Value::Int(_) | Value::Null) {
        return Err(bad(
            Value::Null,
            RpcError::new(ErrorKind::InvalidRequest, "`id` must be a string or an integer")
                .with_cause("bad_id"),
        ));
    }
    match obj.remove("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        _ => {
            let error = RpcError::new(ErrorKind::InvalidRequest, "`jsonrpc` must be \"2.0\"");
            return Err(bad(id, error.with_cause("bad_jsonrpc")));
        }
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        _ => {
            let error = RpcError::new(ErrorKind::InvalidRequest, "`method` must be a string");
            return Err(bad(id, error.with_cause("bad_method")));
        }
    };
    let params = match obj.remove("params") {
        None => Value::Object(Object::new()),
        Some(p @ Value::Object(_)) => p,
        Some(_) => {
            return Err(bad(
                id,
                RpcError::new(ErrorKind::InvalidParams, "`params` must be an object (named parameters)")
                    .with_cause("params_not_an_object"),
            ))
        }
    };
    if let Some(extra) = obj.keys().next() {
        return Err(bad(
            id,
            RpcError::new(ErrorKind::InvalidRequest, format!("unknown request member {extra:?}"))
                .with_cause("unknown_member"),
        ));
    }
    Ok(Request { id, method, params })
}

impl Request {
    /// Reads the params as `M::Params`; a mismatch is `invalid_params`.
    pub fn params<M: Method>(self) -> Result<M::Params, RpcError> {
        self.params.deserialize_into::<M::Params>().map_err(|e| {
            let why = if M::SECRET_PARAMS {
                "they do not match the method's fields and types (details withheld: the params hold a secret)"
                    .to_owned()
            } else {
                e.to_string()
            };
            RpcError::new(ErrorKind::InvalidParams, format!("invalid params for {}: {why}", M::NAME))
                .with_cause("params_mismatch")
        })
    }
}

/// Encodes a request line (newline included).
pub fn encode_request<P: Serialize>(id: u64, method: &str, params: &P) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(Serialize)]
    struct Out<'a, P> {
        jsonrpc: &'static str,
        id: u64,
        method: &'a str,
        params: &'a P,
    }
    let mut line = serde_json::to_vec(&Out { jsonrpc: "2.0", id, method, params })?;
    line.push(b'\n');
    Ok(line)
}

/// Encodes a success response line (newline included).
pub fn encode_result<R: Serialize>(id: &Value, result: &R) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a, R> {
        jsonrpc: &'static str,
        id: &'a Value,
        result: &'a R,
    }
    // Sized for a signed PDU at once: growing from serde_json's default
    // 128 bytes would copy the line four times.
    let mut line = Vec::with_capacity(2048);
    match serde_json::to_writer(&mut line, &Out { jsonrpc: "2.0", id, result }) {
        Ok(()) => {
            line.push(b'\n');
            line
        }
        // Only a result type with a non-string map key could fail here.
        Err(e) => {
            encode_error(id, &RpcError::new(ErrorKind::InternalError, format!("cannot encode result: {e}")))
        }
    }
}

/// Encodes an error response line (newline included).
pub fn encode_error(id: &Value, error: &RpcError) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a> {
        jsonrpc: &'static str,
        id: &'a Value,
        error: &'a RpcError,
    }
    let mut line = serde_json::to_vec(&Out { jsonrpc: "2.0", id, error }).unwrap_or_else(|_| {
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}"#.to_vec()
    });
    line.push(b'\n');
    line
}

/// A response as read by a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub id: Value,
    pub outcome: Result<Value, RpcError>,
}

/// Parses one response line (without its newline).
pub fn decode_response(line: &[u8]) -> Result<Response, String> {
    let value = json::from_slice(line).map_err(|e| format!("malformed response: {e}"))?;
    let Value::Object(mut obj) = value else { return Err("response is not an object".into()) };
    let id = obj.remove("id").unwrap_or(Value::Null);
    let outcome = match (obj.remove("result"), obj.remove("error")) {
        (Some(r), None) => Ok(r),
        (None, Some(e)) => {
            Err(e.deserialize_into::<RpcError>().map_err(|e| format!("malformed error object: {e}"))?)
        }
        _ => return Err("response must hold exactly one of `result` and `error`".into()),
    };
    Ok(Response { id, outcome })
}

#[cfg(test)]
mod tests;
