//! Desktop notifications through `org.freedesktop.Notifications` on the
//! session bus, if a notification daemon runs: "touch your YubiKey" while a
//! touch is awaited (withdrawn when the card answers), and, with
//! `notify_signed = true`, one after each state event signed. No daemon,
//! or one that fails, costs nothing but a debug line.

use crate::service::{Event, Service};
use std::collections::HashMap;
use std::sync::Arc;
use zbus::zvariant::Value;

const DEST: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";

/// Notification bodies may be read as markup: text from the homeserver is
/// escaped.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

async fn notify(
    conn: &zbus::Connection,
    replaces: u32,
    summary: &str,
    body: &str,
    expire_ms: i32,
) -> Option<u32> {
    let body = escaped(body);
    let body = body.as_str();
    let hints: HashMap<&str, Value<'_>> = HashMap::from([("urgency", Value::U8(1))]);
    let actions: Vec<&str> = Vec::new();
    let args = ("cryptoid-agent", replaces, "dialog-password", summary, body, actions, hints, expire_ms);
    match conn.call_method(Some(DEST), PATH, Some(DEST), "Notify", &args).await {
        Ok(reply) => reply.body().deserialize::<u32>().ok(),
        Err(e) => {
            tracing::debug!(error = %e, "no desktop notification");
            None
        }
    }
}

async fn close(conn: &zbus::Connection, id: u32) {
    if let Err(e) = conn.call_method(Some(DEST), PATH, Some(DEST), "CloseNotification", &(id,)).await {
        tracing::debug!(error = %e, id, "cannot withdraw a desktop notification");
    }
}

/// Relays the service's events as notifications until the agent stops.
pub async fn run(svc: Arc<Service>, conn: zbus::Connection) {
    let mut events = svc.subscribe();
    let mut touch: Option<u32> = None;
    loop {
        let ev = match events.recv().await {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        match ev {
            Event::TouchRequested(why) => {
                // Stays until withdrawn: the card waits up to 15 s.
                touch = notify(&conn, touch.unwrap_or(0), "Touch your YubiKey", &why, 0).await;
            }
            Event::TouchDone => {
                if let Some(id) = touch.take() {
                    close(&conn, id).await;
                }
            }
            Event::StateSigned(what) => {
                notify(&conn, 0, "cryptoid-agent signed", &what, 10_000).await;
            }
            Event::LockChanged(_) | Event::KeysChanged => {}
        }
    }
}
