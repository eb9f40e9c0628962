//! The few client-server API calls `share` needs: who am I, and account
//! data read and written. Blocking, rustls, no proxy from the environment.

use crate::output::shown;
use anyhow::{bail, Context, Result};
use cryptoid_protocol::json::{self, Value};
use std::io::Read;
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

pub struct Homeserver {
    base: String,
    token: Zeroizing<String>,
    agent: ureq::Agent,
    pub user_id: String,
}

/// A path segment with everything but unreserved characters escaped.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Homeserver {
    /// Connects as the owner of the access token in `token_file` (first
    /// line); `user_id` is asked of the server when not given.
    pub fn open(url: &str, token_file: &Path, user_id: Option<String>) -> Result<Homeserver> {
        let text = Zeroizing::new(
            std::fs::read_to_string(token_file)
                .with_context(|| format!("cannot read the access token from {}", token_file.display()))?,
        );
        let token = Zeroizing::new(text.lines().next().unwrap_or("").trim().to_owned());
        if token.is_empty() {
            bail!("{} holds no access token", token_file.display());
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            bail!("--homeserver must be an http(s) URL, not {url:?}");
        }
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
        let mut hs =
            Homeserver { base: url.trim_end_matches('/').to_owned(), token, agent, user_id: String::new() };
        hs.user_id = match user_id {
            Some(u) => u,
            None => hs
                .get("/_matrix/client/v3/account/whoami")?
                .and_then(|v| v.as_object().and_then(|o| o.get("user_id")).and_then(Value::as_str).map(shown))
                .context("the homeserver did not say whose access token this is (give --user-id)")?,
        };
        Ok(hs)
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token.as_str())
    }

    /// GETs JSON; `None` for 404 (absent account data).
    /// GETs JSON of at most `limit` bytes; `None` for 404 (absent account
    /// data).
    pub fn get_limited(&self, path: &str, limit: u64) -> Result<Option<Value>> {
        let url = format!("{}{path}", self.base);
        match self.agent.get(&url).set("Authorization", &self.auth()).call() {
            Ok(r) => {
                let mut body = Vec::new();
                r.into_reader()
                    .take(limit + 1)
                    .read_to_end(&mut body)
                    .with_context(|| format!("reading {url}"))?;
                if body.len() as u64 > limit {
                    bail!("{url} answered with more than {limit} bytes");
                }
                Ok(Some(
                    json::from_slice(&body)
                        .with_context(|| format!("{url} did not answer with strict JSON"))?,
                ))
            }
            Err(ureq::Error::Status(404, _)) => Ok(None),
            Err(ureq::Error::Status(code, r)) => bail!("GET {url}: HTTP {code}: {}", body_of(r)),
            Err(e) => Err(e).with_context(|| format!("cannot reach {url}")),
        }
    }

    fn get(&self, path: &str) -> Result<Option<Value>> {
        self.get_limited(path, 1 << 20)
    }

    fn account_data_path(&self, event_type: &str) -> String {
        format!("/_matrix/client/v3/user/{}/account_data/{}", segment(&self.user_id), segment(event_type))
    }

    pub fn account_data(&self, event_type: &str) -> Result<Option<Value>> {
        self.get(&self.account_data_path(event_type))
    }

    /// Account data of at most `limit` bytes.
    pub fn account_data_limited(&self, event_type: &str, limit: u64) -> Result<Option<Value>> {
        self.get_limited(&self.account_data_path(event_type), limit)
    }

    pub fn put_account_data(&self, event_type: &str, content: &Value) -> Result<()> {
        let url = format!("{}{}", self.base, self.account_data_path(event_type));
        let body = json::to_canonical_string(content);
        match self
            .agent
            .put(&url)
            .set("Authorization", &self.auth())
            .set("Content-Type", "application/json")
            .send_string(&body)
        {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, r)) => {
                bail!("PUT {}: HTTP {code}: {}", shown(event_type), body_of(r))
            }
            Err(e) => Err(e).with_context(|| format!("cannot reach {url}")),
        }
    }
}

/// The start of an error body, made safe for a terminal: it comes from
/// the homeserver.
fn body_of(r: ureq::Response) -> String {
    let mut body = Vec::new();
    let _ = r.into_reader().take(512).read_to_end(&mut body);
    shown(&String::from_utf8_lossy(&body))
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(super::segment("@alice:example.org"), "%40alice%3Aexample.org");
        assert_eq!(super::segment("m.secret_storage.key.a/b"), "m.secret_storage.key.a%2Fb");
    }
}
