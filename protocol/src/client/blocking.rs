//! A blocking client over `std::os::unix::net::UnixStream`.

use super::{complete, default_socket_path, ClientError};
use crate::wire::{self, Method, MAX_RESPONSE_LINE};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// One connection to the agent. Calls are sequential; open several
/// connections for concurrency.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Client {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path)
            .map_err(|source| ClientError::Connect { path: path.to_owned(), source })?;
        let writer = stream.try_clone()?;
        Ok(Client { reader: BufReader::new(stream), writer, next_id: 1 })
    }

    /// Connects to [`default_socket_path`].
    pub fn connect_default() -> Result<Client, ClientError> {
        let path = default_socket_path().ok_or(ClientError::NoSocket)?;
        Client::connect(&path)
    }

    /// Bounds how long one call may wait for the agent (e.g. a confirmation
    /// prompt); `None` waits forever.
    pub fn set_timeout(&self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.writer.set_read_timeout(timeout)?;
        self.writer.set_write_timeout(timeout)?;
        Ok(())
    }

    /// Calls method `M` and waits for its result.
    pub fn call<M: Method>(&mut self, params: &M::Params) -> Result<M::Result, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let line =
            wire::encode_request(id, M::NAME, params).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let written = self.writer.write_all(&line);
        let mut buf = Vec::with_capacity(1024);
        let read = (&mut self.reader).take(MAX_RESPONSE_LINE as u64 + 1).read_until(b'\n', &mut buf);
        complete::<M>(id, written, read, buf)
    }

    /// Pipelines calls of method `M`: every request is written at once,
    /// then the answers are read; the agent answers a connection's requests
    /// in order, each with its `id` (checked). One result per request, in
    /// order. Worth it where many calls wait on nothing but each other: a
    /// createRoom's batch signed PDU by PDU, catching up after being
    /// offline.
    pub fn call_pipelined<M: Method>(&mut self, params: &[M::Params]) -> Vec<Result<M::Result, ClientError>> {
        let first = self.next_id;
        let mut lines = Vec::with_capacity(params.len() * 1024);
        for p in params {
            match wire::encode_request(self.next_id, M::NAME, p) {
                Ok(l) => lines.extend_from_slice(&l),
                Err(e) => return vec![Err(ClientError::Protocol(e.to_string()))],
            }
            self.next_id += 1;
        }
        let written = self.writer.write_all(&lines);
        (0..params.len() as u64)
            .map(|i| {
                let mut buf = Vec::with_capacity(1024);
                let read = (&mut self.reader).take(MAX_RESPONSE_LINE as u64 + 1).read_until(b'\n', &mut buf);
                let w =
                    written.as_ref().map(|_| ()).map_err(|e| std::io::Error::new(e.kind(), e.to_string()));
                complete::<M>(first + i, w, read, buf)
            })
            .collect()
    }
}
