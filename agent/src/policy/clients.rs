//! Per-executable rules. `confirm` means once per agent session: after one
//! approval the executable is trusted until the agent restarts.

use super::config::{glob, Action, PolicyConfig};
use super::{ClientFacts, Finding};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Sign,
    Manage,
}

pub fn check(client: &ClientFacts<'_>, cfg: &PolicyConfig, purpose: Purpose) -> Finding {
    let exe = client.exe.unwrap_or("(unknown executable)");
    let rule = client.exe.and_then(|e| cfg.clients.iter().find(|r| glob(&r.exe, e)));
    let (action, source) = match rule {
        Some(r) => (
            match purpose {
                Purpose::Sign => r.sign,
                Purpose::Manage => r.manage,
            },
            format!("client rule {:?}", r.exe),
        ),
        None => (cfg.unknown_clients, "unknown_clients".to_owned()),
    };
    match action {
        Action::Confirm if client.approved_this_session => {
            Finding::new(Action::Allow, format!("client {exe} was approved earlier in this session"))
        }
        Action::Confirm => Finding::new(
            Action::Confirm,
            format!("client {exe} is not yet approved in this session ({source})"),
        ),
        Action::Allow => Finding::new(Action::Allow, format!("client {exe} is allowed ({source})")),
        Action::Deny => Finding::new(Action::Deny, format!("client {exe} is denied ({source})")),
    }
}
