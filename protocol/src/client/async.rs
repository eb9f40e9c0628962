//! An async client on tokio (feature `tokio`).

use super::{complete, default_socket_path, ClientError};
use crate::wire::{self, Method, MAX_RESPONSE_LINE};
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// One connection to the agent; calls are sequential.
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
}

impl Client {
    pub async fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect { path: path.to_owned(), source })?;
        let (r, w) = stream.into_split();
        Ok(Client { reader: BufReader::new(r), writer: w, next_id: 1 })
    }

    pub async fn connect_default() -> Result<Client, ClientError> {
        let path = default_socket_path().ok_or(ClientError::NoSocket)?;
        Client::connect(&path).await
    }

    /// Calls method `M` and waits for its result.
    pub async fn call<M: Method>(&mut self, params: &M::Params) -> Result<M::Result, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let line =
            wire::encode_request(id, M::NAME, params).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let written = self.writer.write_all(&line).await;
        let mut buf = Vec::with_capacity(1024);
        let read = (&mut self.reader).take(MAX_RESPONSE_LINE as u64 + 1).read_until(b'\n', &mut buf).await;
        complete::<M>(id, written, read, buf)
    }
}
