//! Requests the agent cannot take as they are: the wire, the method, the
//! parameters.

use cryptoid_protocol::wire::RpcError;

/// A request refused before any work: malformed, unknown, or with a
/// parameter out of range.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Decoding failed (not JSON, not strict JSON, not a request, params of
    /// the wrong shape, too large); the wire layer chose the kind.
    #[error("{}", .0.message)]
    Wire(RpcError),
    #[error("unknown method {0:?}; see agent.hello")]
    UnknownMethod(String),
    /// A parameter that decoded but is out of range or malformed; `param`
    /// names it.
    #[error("{why}")]
    Param { param: &'static str, why: String },
}

impl RequestError {
    pub fn param(param: &'static str, why: impl Into<String>) -> RequestError {
        RequestError::Param { param, why: why.into() }
    }
}
