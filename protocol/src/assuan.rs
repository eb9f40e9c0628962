//! The Assuan protocol as pinentry speaks it, without I/O: the commands the
//! agent and `cryptoidctl` send (percent-escaped), and the lines pinentry
//! answers with. The callers do the reading and writing (async in the
//! agent, blocking in the CLI) around [`Dialog`].
//!
//! A conversation: pinentry greets with `OK`; each command gets `OK`, `ERR
//! <code> <text>`, or for `GETPIN` first `D <escaped data>` lines. `S` and
//! `#` lines are status and comments.

use zeroize::Zeroizing;

/// Escapes a parameter: `%`, CR, LF and other controls as `%XX`. pinentry
/// shows `%0A` in a description as a line break.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Longest escaped parameter sent: Assuan lines are at most 1000 bytes.
const MAX_PARAM: usize = 900;

/// Cuts escaped text to `max` bytes, on a character and escape boundary,
/// marking the cut.
fn cut(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max - "…".len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    // Never split a %XX escape.
    if let Some(p) = text[..end].rfind('%').filter(|p| end - p < 3) {
        end = p;
    }
    format!("{}…", &text[..end])
}

/// Decodes `%XX` escapes of a data line; `None` for a malformed escape.
pub fn unescape(data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(data.len()));
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'%' {
            let hex = data.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(s, 16).ok()?);
            i += 3;
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    Some(out)
}

/// One line from pinentry.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Ok,
    /// `ERR code text`: the low 16 bits of the code are the gpg-error code
    /// (99 cancelled, 62 timeout).
    Err(u32, String),
    /// A `D` line's data, still percent-escaped (part of the PIN): wiped
    /// when dropped. Data is a stream: a long PIN comes in several `D`
    /// lines, and an escape may be split between two of them, so lines are
    /// joined before they are decoded ([`Dialog`] does).
    Data(Zeroizing<Vec<u8>>),
    /// `S`, `#`, `INQUIRE` or anything else: ignored.
    Other,
}

/// gpg-error codes pinentry answers with.
pub const GPG_ERR_TIMEOUT: u32 = 62;
pub const GPG_ERR_CANCELED: u32 = 99;
pub const GPG_ERR_NOT_CONFIRMED: u32 = 114;

/// Reads one line (without its newline).
pub fn parse(line: &[u8]) -> Line {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line == b"OK" || line.starts_with(b"OK ") {
        return Line::Ok;
    }
    if let Some(rest) = line.strip_prefix(b"ERR ") {
        let text = String::from_utf8_lossy(rest);
        let (code, msg) = text.split_once(' ').unwrap_or((&text, ""));
        return Line::Err(code.parse().unwrap_or(0), msg.to_owned());
    }
    if let Some(rest) = line.strip_prefix(b"D ") {
        return Line::Data(Zeroizing::new(rest.to_vec()));
    }
    Line::Other
}

/// How a dialog ended (`Debug` never shows a PIN).
#[derive(PartialEq, Eq)]
pub enum Outcome {
    /// `CONFIRM` accepted, or `GETPIN` answered (the PIN, wiped on drop).
    Confirmed,
    Pin(Zeroizing<String>),
    Cancelled,
    TimedOut,
    /// Any other `ERR`, or a malformed PIN.
    Failed(String),
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Confirmed => f.write_str("Confirmed"),
            Outcome::Pin(_) => f.write_str("Pin(<redacted>)"),
            Outcome::Cancelled => f.write_str("Cancelled"),
            Outcome::TimedOut => f.write_str("TimedOut"),
            Outcome::Failed(why) => f.debug_tuple("Failed").field(why).finish(),
        }
    }
}

impl Outcome {
    fn of_err(code: u32, text: String) -> Outcome {
        match code & 0xffff {
            GPG_ERR_CANCELED | GPG_ERR_NOT_CONFIRMED => Outcome::Cancelled,
            GPG_ERR_TIMEOUT => Outcome::TimedOut,
            _ => Outcome::Failed(format!("pinentry: ERR {code} {text}")),
        }
    }
}

/// What to show.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub title: String,
    pub description: String,
    /// The PIN prompt (`GETPIN` only), e.g. "PIN:".
    pub prompt: Option<String>,
    pub ok: Option<String>,
    pub cancel: Option<String>,
    /// Seconds before pinentry gives up by itself (0: never).
    pub timeout_secs: u64,
    /// `OPTION ttyname=…` for terminal pinentries.
    pub tty: Option<String>,
    /// `true`: ask for a PIN (`GETPIN`); `false`: a yes/no (`CONFIRM`).
    pub wants_pin: bool,
}

/// The conversation, step by step: [`Dialog::next`] says what to send
/// after each line read (starting with the greeting).
pub struct Dialog {
    commands: std::vec::IntoIter<String>,
    final_command: &'static str,
    sent_final: bool,
    /// The `D` lines so far, joined, still escaped.
    data: Option<Zeroizing<Vec<u8>>>,
}

/// Most data taken from pinentry (escaped): far above any passphrase, and
/// a bound on what a broken pinentry can make us hold.
pub const MAX_DATA: usize = 64 * 1024;

/// What to do after a line.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this command line (newline included).
    Send(String),
    /// The dialog is over: send `BYE` and close.
    Done(Outcome),
}

impl Dialog {
    pub fn new(r: &Request) -> Dialog {
        let mut c = Vec::new();
        if let Some(tty) = &r.tty {
            c.push(format!("OPTION ttyname={}\n", escape(tty)));
        }
        c.push(format!("SETTITLE {}\n", escape(&r.title)));
        c.push(format!("SETDESC {}\n", cut(escape(&r.description), MAX_PARAM)));
        if let Some(p) = &r.prompt {
            c.push(format!("SETPROMPT {}\n", escape(p)));
        }
        if let Some(ok) = &r.ok {
            c.push(format!("SETOK {}\n", escape(ok)));
        }
        if let Some(cancel) = &r.cancel {
            c.push(format!("SETCANCEL {}\n", escape(cancel)));
        }
        if r.timeout_secs > 0 {
            c.push(format!("SETTIMEOUT {}\n", r.timeout_secs));
        }
        Dialog {
            commands: c.into_iter(),
            final_command: if r.wants_pin { "GETPIN\n" } else { "CONFIRM\n" },
            sent_final: false,
            data: None,
        }
    }

    /// Feeds one line read from pinentry.
    pub fn next(&mut self, line: &[u8]) -> Step {
        match parse(line) {
            Line::Other => Step::Send(String::new()),
            Line::Data(d) => {
                // Reserved whole: growing would leave copies of the secret in
                // freed memory that nobody wipes.
                let data = self.data.get_or_insert_with(|| Zeroizing::new(Vec::with_capacity(MAX_DATA)));
                if data.len() + d.len() > MAX_DATA {
                    return Step::Done(Outcome::Failed(format!(
                        "pinentry sent more than {MAX_DATA} bytes of data"
                    )));
                }
                data.extend_from_slice(&d);
                Step::Send(String::new())
            }
            Line::Err(code, text) => Step::Done(Outcome::of_err(code, text)),
            Line::Ok if !self.sent_final => match self.commands.next() {
                Some(c) => Step::Send(c),
                None => {
                    self.sent_final = true;
                    Step::Send(self.final_command.to_owned())
                }
            },
            Line::Ok => Step::Done(match self.data.take() {
                None if self.final_command.starts_with("CONFIRM") => Outcome::Confirmed,
                None => Outcome::Pin(Zeroizing::new(String::new())),
                Some(escaped) => match unescape(&escaped) {
                    None => Outcome::Failed("pinentry returned a PIN with a malformed %-escape".into()),
                    Some(pin) => match String::from_utf8(pin.to_vec()) {
                        Ok(s) => Outcome::Pin(Zeroizing::new(s)),
                        Err(e) => {
                            zeroize::Zeroize::zeroize(&mut e.into_bytes());
                            Outcome::Failed("pinentry returned a PIN that is not UTF-8".into())
                        }
                    },
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(r: &Request, answers: &[&str]) -> (Vec<String>, Option<Outcome>) {
        let mut d = Dialog::new(r);
        let mut sent = Vec::new();
        for a in answers {
            match d.next(a.as_bytes()) {
                Step::Send(s) if s.is_empty() => {}
                Step::Send(s) => sent.push(s),
                Step::Done(o) => return (sent, Some(o)),
            }
        }
        (sent, None)
    }

    #[test]
    fn a_long_description_is_cut_to_fit_an_assuan_line() {
        let long = "é%".repeat(400);
        let c = cut(escape(&long), MAX_PARAM);
        assert!(c.len() <= MAX_PARAM && c.ends_with('…'), "{}", c.len());
        assert!(!c.trim_end_matches('…').ends_with('%') && !c.trim_end_matches('…').ends_with("%2"));
        let r = Request { description: long, ..Default::default() };
        let (sent, _) = run(&r, &["OK", "OK", "OK"]);
        assert!(sent.iter().all(|l| l.len() < 1000));
    }

    #[test]
    fn escapes_controls_and_percent_only() {
        assert_eq!(escape("50% of\nroom é\r"), "50%25 of%0Aroom é%0D");
        assert_eq!(unescape(b"a%25b%0Ac").as_deref().map(Vec::as_slice), Some(&b"a%b\nc"[..]));
        assert_eq!(unescape(b"bad%2"), None);
        assert_eq!(unescape(b"bad%zz"), None);
    }

    #[test]
    fn a_confirmation_sets_the_texts_then_confirms() {
        let r = Request {
            title: "cryptoid-agent".into(),
            description: "ban @bob\nin !r".into(),
            ok: Some("Allow".into()),
            cancel: Some("Deny".into()),
            timeout_secs: 60,
            tty: Some("/dev/pts/3".into()),
            ..Default::default()
        };
        let (sent, end) = run(&r, &["OK Pleased to meet you", "OK", "OK", "OK", "OK", "OK", "OK", "OK"]);
        assert_eq!(
            sent,
            [
                "OPTION ttyname=/dev/pts/3\n",
                "SETTITLE cryptoid-agent\n",
                "SETDESC ban @bob%0Ain !r\n",
                "SETOK Allow\n",
                "SETCANCEL Deny\n",
                "SETTIMEOUT 60\n",
                "CONFIRM\n"
            ]
        );
        assert_eq!(end, Some(Outcome::Confirmed));
    }

    #[test]
    fn cancel_timeout_and_errors_are_told_apart() {
        let r = Request::default();
        assert_eq!(
            run(&r, &["OK", "OK", "OK", "ERR 83886179 Operation cancelled <Pinentry>"]).1,
            Some(Outcome::Cancelled)
        );
        assert_eq!(
            run(&r, &["OK", "OK", "OK", "ERR 83886194 Not confirmed <Pinentry>"]).1,
            Some(Outcome::Cancelled)
        );
        assert_eq!(
            run(&r, &["OK", "OK", "OK", "ERR 83886142 Timeout <Pinentry>"]).1,
            Some(Outcome::TimedOut)
        );
        assert!(matches!(run(&r, &["ERR 1 no display"]).1, Some(Outcome::Failed(_))));
    }

    #[test]
    fn a_pin_comes_in_data_lines_and_is_unescaped() {
        let r = Request { wants_pin: true, prompt: Some("PIN:".into()), ..Default::default() };
        let (sent, end) = run(&r, &["OK", "OK", "OK", "OK", "S PASSWORD_FROMCACHE", "D 12%2534", "OK"]);
        assert_eq!(sent.last().map(String::as_str), Some("GETPIN\n"));
        assert_eq!(end, Some(Outcome::Pin(Zeroizing::new("12%34".into()))));
    }

    /// Regression: only the last `D` line was kept, so a passphrase longer
    /// than one Assuan line (pinentry splits data at about 1000 bytes) was
    /// cut, set as the passphrase by the first unlock, and the user locked
    /// out. Lines are joined, and escapes decoded after joining (one may
    /// be split between two lines).
    #[test]
    fn a_long_pin_comes_in_several_data_lines_and_is_joined_before_decoding() {
        let r = Request { wants_pin: true, ..Default::default() };
        let secret = format!("{}%ü\n{}", "a".repeat(990), "b".repeat(1500));
        let escaped = escape(&secret);
        // Split at 900 bytes, and once in the middle of an escape.
        let mut lines: Vec<String> = vec!["OK".into(), "OK".into(), "OK".into()];
        let mut rest = escaped.as_str();
        let split_escape = rest.find('%').map(|p| p + 1).unwrap_or(1);
        lines.push(format!("D {}", &rest[..split_escape]));
        rest = &rest[split_escape..];
        while !rest.is_empty() {
            let mut n = rest.len().min(900);
            while !rest.is_char_boundary(n) {
                n -= 1;
            }
            lines.push(format!("D {}", &rest[..n]));
            rest = &rest[n..];
        }
        assert!(lines.len() >= 6, "several D lines: {}", lines.len());
        lines.push("OK".into());
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (_, end) = run(&r, &refs);
        assert_eq!(end, Some(Outcome::Pin(Zeroizing::new(secret))));
        // A malformed escape across the whole stream is an error, not a
        // different PIN.
        let (_, end) = run(&r, &["OK", "OK", "OK", "D ab%", "D 4", "OK"]);
        assert!(matches!(end, Some(Outcome::Failed(_))), "{end:?}");
        // Control: one line still works.
        let (_, end) = run(&r, &["OK", "OK", "OK", "D ab%2", "D 5cd", "OK"]);
        assert_eq!(end, Some(Outcome::Pin(Zeroizing::new("ab%cd".into()))));
    }
}
