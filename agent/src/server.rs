//! Start-up pieces: the data-directory lock, the listening socket (bound
//! here, or passed by systemd), and the serve loop with its shutdown.

use crate::error::{Error, Result};
use crate::fsutil;
use crate::service::Service;
use crate::transport::socket::{self, Limits};
use std::fs::File;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

fn startup(msg: String) -> Error {
    Error::Internal(msg)
}

/// Takes an exclusive lock on the data directory: two agents on one
/// keystore would race on key records and the journal.
pub fn lock_data_dir(dir: &Path) -> Result<File> {
    fsutil::private_dir(dir)?;
    use std::os::unix::fs::OpenOptionsExt;
    let f =
        File::options().create(true).truncate(false).write(true).mode(0o600).open(dir.join("agent.lock"))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| startup(format!("another cryptoid-agent is using {}; stop it first", dir.display())))?;
    Ok(f)
}

/// A listening socket and whether this process created its file.
pub struct Listening {
    pub listener: UnixListener,
    /// The socket file to remove at exit (not for systemd's socket).
    pub created: Option<PathBuf>,
    pub path: Option<PathBuf>,
}

/// The socket systemd passed (`LISTEN_FDS`/`LISTEN_PID`), if any.
pub fn from_systemd() -> Result<Option<Listening>> {
    let mut fds = listenfd::ListenFd::from_env();
    match fds.take_unix_listener(0)? {
        Some(l) => {
            let path = l.local_addr().ok().and_then(|a| a.as_pathname().map(Path::to_path_buf));
            Ok(Some(Listening { listener: l, created: None, path }))
        }
        None => Ok(None),
    }
}

/// Binds `path` (directory 0700, socket 0600). A stale socket left by a
/// crash is replaced; a live one (another agent) is an error.
pub fn bind(path: &Path) -> Result<Listening> {
    let dir =
        path.parent().ok_or_else(|| startup(format!("socket path {} has no directory", path.display())))?;
    fsutil::private_dir(dir)?;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(startup(format!(
                "{} exists and is not a socket; remove it or pick another --socket",
                path.display()
            )));
        }
        match UnixStream::connect(path) {
            Ok(_) => {
                return Err(startup(format!(
                    "another agent is serving {}; stop it first or pick another --socket",
                    path.display()
                )))
            }
            Err(_) => {
                tracing::info!(path = %path.display(), "replacing a stale socket");
                std::fs::remove_file(path)?;
            }
        }
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(Listening { listener, created: Some(path.to_owned()), path: Some(path.to_owned()) })
}

/// Serves until `shutdown` completes, then drains connections, flushes the
/// journal and removes the socket file this process created.
pub async fn run(
    svc: Arc<Service>,
    listening: Listening,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    listening.listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listening.listener)?;
    let (tx, rx) = watch::channel(false);
    let serving = tokio::spawn(socket::serve(listener, svc.clone(), limits, rx));
    // The room view reaches the disk every second (the journal covers the rest).
    let flusher = {
        let svc = svc.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                let s = svc.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.flush_rooms()).await {
                    tracing::warn!(error = %e, "room view flush failed; will retry");
                }
            }
        })
    };
    shutdown.await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = tx.send(true);
    if let Err(e) = serving.await {
        tracing::error!(error = %e, "serve loop failed");
    }
    flusher.abort();
    if let Some(p) = &listening.created {
        let _ = std::fs::remove_file(p);
    }
    svc.shutdown()
}
