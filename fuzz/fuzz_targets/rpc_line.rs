//! The JSON-RPC request-line decoder, and typed params for every method.
//!
//! Oracles: no panic; every error response the agent would send for the
//! line is itself a valid response line that a client can decode.
#![no_main]

use cryptoid_protocol::wire::{self, agent, backend, confirm, journal, keys, otk, policy, rooms, sign};
use libfuzzer_sys::fuzz_target;

fn params<M: wire::Method>(req: &wire::Request) -> Option<wire::RpcError> {
    req.clone().params::<M>().err()
}

fuzz_target!(|data: &[u8]| {
    let req = match wire::decode_request(data) {
        Ok(req) => req,
        Err(bad) => {
            let line = wire::encode_error(&bad.id, &bad.error);
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            wire::decode_response(body).expect("an error response must decode");
            return;
        }
    };
    // Every method's params decoder sees every request.
    let errors = [
        params::<agent::Unlock>(&req),
        params::<agent::Passwd>(&req),
        params::<backend::Init>(&req),
        params::<confirm::Answer>(&req),
        params::<journal::Tail>(&req),
        params::<keys::Create>(&req),
        params::<keys::List>(&req),
        params::<keys::Get>(&req),
        params::<otk::Generate>(&req),
        params::<otk::MarkPublished>(&req),
        params::<otk::Claim>(&req),
        params::<rooms::Observe>(&req),
        params::<sign::SignPdu>(&req),
        params::<sign::SignBatch>(&req),
        params::<policy::Check>(&req),
    ];
    for e in errors.into_iter().flatten() {
        let line = wire::encode_error(&req.id, &e);
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        wire::decode_response(body).expect("an error response must decode");
    }
});
