//! The audit journal: hash-chained JSON Lines.
//!
//! Each line is the canonical JSON of one entry holding `seq`, `ts` and
//! `prev`, the SHA-256 (unpadded Base64) of the previous line's bytes. An
//! edited, removed or reordered entry breaks the chain; an edited or dropped
//! *last* entry is caught by comparing with the head the running agent
//! remembers. (Anyone who can rewrite the whole file can recompute the chain:
//! the chain makes tampering evident, it does not prevent it.)
//!
//! Durability without making signing fsync-bound: an entry is `write(2)`n
//! before the request is answered, so it survives a crash of the agent; a
//! background thread fsyncs at most every `fsync_interval`.
//!
//! Group commit without stalling other connections: an entry is encoded
//! by its caller, outside any lock, into the parts around `prev`, `seq` and
//! `ts` (canonical JSON sorts keys, so where those go is known). Callers
//! queue their entries; whoever then holds the writer lock writes every
//! queued entry, chained, in one `write(2)`, and the callers whose entries
//! it wrote find them done when they get the lock. Each caller still returns
//! only once its own line is written. A connection that answers several
//! pipelined requests at once queues their entries (`enqueue`) and commits
//! them in one write before it sends any of the answers.
//! A torn last line left by `kill -9` is cut off at start-up and the repair
//! is journaled. Segments rotate by size; the chain runs across them.

use crate::fsutil;
use crate::sync::MutexExt;
use cryptoid_protocol::base64;
use cryptoid_protocol::json::{self, Int, Object, Value, MAX_SAFE_INT};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Journal settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Start a new segment once the current one reaches this size.
    pub max_segment_bytes: u64,
    /// Longest time an entry waits for its fsync.
    pub fsync_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_segment_bytes: 8 << 20, fsync_interval: Duration::from_millis(20) }
    }
}

const GENESIS: [u8; 32] = [0; 32];

struct Writer {
    file: Arc<File>,
    segment: u32,
    size: u64,
    seq: u64,
    head: [u8; 32],
    /// Outcomes of entries another caller wrote in its batch, by ticket,
    /// until their callers collect them.
    done: HashMap<u64, Result<u64, (io::ErrorKind, String)>>,
    /// A failed write could not be cut off: anything appended now would
    /// follow broken bytes mid-file, so nothing is until a restart repairs
    /// the tail.
    broken: bool,
}

/// An entry's place in the write queue (see [`Journal::enqueue`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "commit the ticket before acting on the outcome it journals"]
pub struct Ticket(u64);

/// Entries waiting for the writer, in ticket order.
#[derive(Default)]
struct Queue {
    next_ticket: u64,
    waiting: Vec<Queued>,
}

struct Queued {
    ticket: u64,
    body: Body,
    now_ms: u64,
}

/// An entry's canonical JSON without `prev`, `seq` and `ts`: its members in
/// the four runs those keys split them into (keys sort by code point).
struct Body {
    runs: [Vec<u8>; 4],
}

/// The keys the journal adds, in the order canonical JSON puts them.
const ADDED: [&str; 3] = ["prev", "seq", "ts"];

impl Body {
    fn encode(fields: &Object) -> Body {
        let mut runs: [Vec<u8>; 4] = Default::default();
        // The journal's own keys are set by the writer, never by a caller.
        for (k, v) in fields.iter().filter(|(k, _)| !ADDED.contains(&k.as_str())) {
            let run = &mut runs[ADDED.iter().filter(|added| k.as_str() > **added).count()];
            if !run.is_empty() {
                run.push(b',');
            }
            json::write_str(run, k);
            run.push(b':');
            json::write_value(run, v);
        }
        Body { runs }
    }

    /// The whole line (no newline) with the chain fields spliced in.
    fn line(&self, prev: &[u8; 32], seq: u64, ts: u64, out: &mut Vec<u8>) {
        let added = [Value::String(base64::encode(prev)), Value::Int(int(seq)), Value::Int(int(ts))];
        out.push(b'{');
        let mut first = true;
        let mut member = |out: &mut Vec<u8>, bytes: &dyn Fn(&mut Vec<u8>)| {
            if !first {
                out.push(b',');
            }
            first = false;
            bytes(out);
        };
        for (i, run) in self.runs.iter().enumerate() {
            if !run.is_empty() {
                member(out, &|o| o.extend_from_slice(run));
            }
            if let (Some(key), Some(value)) = (ADDED.get(i), added.get(i)) {
                member(out, &|o| {
                    json::write_str(o, key);
                    o.push(b':');
                    json::write_value(o, value);
                });
            }
        }
        out.push(b'}');
    }
}

pub struct Journal {
    dir: PathBuf,
    opts: Options,
    queue: Mutex<Queue>,
    writer: Mutex<Writer>,
    /// `write(2)` calls made (each writes one batch).
    writes: std::sync::atomic::AtomicU64,
    /// The current segment, shared with the fsync thread.
    current: Arc<Mutex<Arc<File>>>,
    dirty: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    flusher: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What opening found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Bytes of a torn last line that were cut off.
    pub torn_bytes: u64,
}

/// The result of a chain check.
#[derive(Debug, PartialEq, Eq)]
pub struct Verification {
    pub entries: u64,
    pub error: Option<Tamper>,
}

/// What a chain check found wrong; `at` is the segment and line.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Tamper {
    #[error("{at}: not a JSON object")]
    NotAnEntry { at: String },
    #[error("{at}: seq {found:?} where {expected} was expected (entry removed or reordered)")]
    OutOfSequence { at: String, found: Option<i64>, expected: u64 },
    #[error("{at}: prev does not match the previous entry (entry {previous} edited, removed or reordered)")]
    ChainBroken { at: String, previous: u64 },
    #[error("the journal ends at entry {found} but the agent wrote {written} (entries removed)")]
    Truncated { found: u64, written: u64 },
    #[error("entry {0} differs from what the agent wrote (last entry edited)")]
    LastEdited(u64),
}

fn segment_name(n: u32) -> String {
    format!("journal-{n:06}.jsonl")
}

fn segments(dir: &Path) -> io::Result<Vec<(u32, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(n) = name.strip_prefix("journal-").and_then(|r| r.strip_suffix(".jsonl")) {
            if let Ok(n) = n.parse::<u32>() {
                out.push((n, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn hash(line: &[u8]) -> [u8; 32] {
    Sha256::digest(line).into()
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

fn damaged(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("journal {} is damaged: {why}; move it aside to start with a new journal", path.display()),
    )
}

/// The last complete line of `bytes` (without its newline).
fn last_line(bytes: &[u8]) -> Option<&[u8]> {
    let body = bytes.strip_suffix(b"\n")?;
    Some(match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => &body[i + 1..],
        None => body,
    })
}

fn seq_of(line: &[u8], path: &Path) -> io::Result<u64> {
    let v = json::from_slice(line).map_err(|e| damaged(path, format!("last entry unreadable ({e})")))?;
    v.as_object()
        .and_then(|o| o.get("seq"))
        .and_then(Value::as_int)
        .and_then(|s| u64::try_from(s).ok())
        .ok_or_else(|| damaged(path, "last entry has no seq"))
}

impl Journal {
    /// Opens the journal in `dir`, repairing a torn tail.
    pub fn open(dir: PathBuf, opts: Options) -> io::Result<(Journal, Recovery)> {
        fsutil::private_dir(&dir)?;
        let mut segs = segments(&dir)?;
        let mut recovery = Recovery::default();
        if segs.is_empty() {
            let path = dir.join(segment_name(1));
            drop(open_append(&path)?);
            fsutil::sync_dir(&dir)?;
            segs.push((1, path));
        }
        let (segment, path) = segs.last().cloned().ok_or_else(|| io::Error::other("no journal segment"))?;
        let mut bytes = std::fs::read(&path)?;
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if keep < bytes.len() {
            recovery.torn_bytes = (bytes.len() - keep) as u64;
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(keep as u64)?;
            f.sync_all()?;
            bytes.truncate(keep);
        }
        // The chain head: the last line of this segment, or of the one before
        // when this one is empty (just rotated).
        let (seq, head) = match last_line(&bytes) {
            Some(line) => (seq_of(line, &path)?, hash(line)),
            None => match segs.iter().rev().nth(1) {
                Some((_, prev)) => {
                    let prev_bytes = std::fs::read(prev)?;
                    match last_line(&prev_bytes) {
                        Some(line) => (seq_of(line, prev)?, hash(line)),
                        None => (0, GENESIS),
                    }
                }
                None => (0, GENESIS),
            },
        };
        let file = Arc::new(open_append(&path)?);
        let j = Journal {
            dir,
            opts,
            current: Arc::new(Mutex::new(file.clone())),
            queue: Mutex::new(Queue::default()),
            writes: Default::default(),
            writer: Mutex::new(Writer {
                file,
                segment,
                size: bytes.len() as u64,
                seq,
                head,
                done: HashMap::new(),
                broken: false,
            }),
            dirty: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
            flusher: Mutex::new(None),
        };
        j.start_flusher();
        Ok((j, recovery))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.locked()
    }

    fn start_flusher(&self) {
        let dirty = self.dirty.clone();
        let stop = self.stop.clone();
        let current = self.current.clone();
        let interval = self.opts.fsync_interval;
        let handle = std::thread::Builder::new().name("journal-fsync".into()).spawn(move || loop {
            std::thread::sleep(interval);
            let stopping = stop.load(Ordering::Acquire);
            if dirty.swap(false, Ordering::AcqRel) {
                let file = current.locked().clone();
                if let Err(e) = file.sync_data() {
                    tracing::error!(error = %e, "journal fsync failed; will retry");
                    dirty.store(true, Ordering::Release);
                }
            }
            if stopping {
                break;
            }
        });
        match handle {
            Ok(h) => *self.flusher.locked() = Some(h),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the journal fsync thread; entries are fsynced at shutdown")
            }
        }
    }

    /// Appends an entry with `fields` (which must not hold `seq`, `ts` or
    /// `prev`). Returns its sequence number once its line is written (not
    /// yet fsynced), by this caller or by another in the same batch.
    pub fn append(&self, fields: Object, now_ms: u64) -> io::Result<u64> {
        let ticket = self.enqueue(fields, now_ms);
        self.commit(ticket)
    }

    /// Queues an entry (encoded here, outside any lock) without writing it:
    /// the next [`Journal::commit`] by anyone writes it. Its caller must
    /// not act on the outcome before committing its ticket.
    pub fn enqueue(&self, fields: Object, now_ms: u64) -> Ticket {
        let body = Body::encode(&fields);
        drop(fields);
        let mut q = self.queue.locked();
        q.next_ticket += 1;
        let ticket = q.next_ticket;
        q.waiting.push(Queued { ticket, body, now_ms });
        Ticket(ticket)
    }

    /// Makes sure the entry of `ticket` is written (with every entry queued
    /// before it, and any queued since); its sequence number.
    pub fn commit(&self, ticket: Ticket) -> io::Result<u64> {
        let mut w = self.lock();
        if !w.done.contains_key(&ticket.0) {
            // Still queued: write it, and whatever queued meanwhile. Its
            // outcome is recorded whether or not the write worked.
            let _ = self.write_queued(&mut w);
        }
        match w.done.remove(&ticket.0) {
            Some(outcome) => outcome.map_err(|(kind, why)| io::Error::new(kind, why)),
            None => Err(io::Error::other("journal entry lost from the write queue")),
        }
    }

    /// Writes every queued entry now; their owners find them done.
    pub fn flush_queue(&self) -> io::Result<()> {
        if self.queue.locked().waiting.is_empty() {
            return Ok(());
        }
        let mut w = self.lock();
        self.write_queued(&mut w)
    }

    /// Writes the queue as one batch and records each entry's outcome for
    /// its owner's `commit`.
    fn write_queued(&self, w: &mut Writer) -> io::Result<()> {
        let batch = std::mem::take(&mut self.queue.locked().waiting);
        if batch.is_empty() {
            return Ok(());
        }
        let outcome = self.write_batch(w, &batch);
        for (i, q) in batch.iter().enumerate() {
            let r = match &outcome {
                Ok(first) => Ok(first + i as u64),
                Err(e) => Err((e.kind(), e.to_string())),
            };
            w.done.insert(q.ticket, r);
        }
        outcome.map(drop)
    }

    /// Chains and writes `batch` in one `write(2)`; the first entry's
    /// sequence number. On failure nothing of the batch stays in the file
    /// and the chain is where it was.
    fn write_batch(&self, w: &mut Writer, batch: &[Queued]) -> io::Result<u64> {
        if w.broken {
            return Err(io::Error::other(
                "the journal's last write could not be cut off; restart the agent to repair it",
            ));
        }
        let (mut seq, mut head) = (w.seq, w.head);
        let mut lines = Vec::with_capacity(batch.len() * 512);
        for q in batch {
            seq += 1;
            let start = lines.len();
            q.body.line(&head, seq, q.now_ms, &mut lines);
            head = hash(&lines[start..]);
            lines.push(b'\n');
        }
        // One write(2): O_APPEND keeps lines whole between writers, and a
        // crash can tear only the last one.
        if let Err(e) = (&*w.file).write_all(&lines) {
            // A short write (a full disk) leaves part of the batch; cut it
            // off, or the next entry would be glued to it and break the chain.
            if let Err(t) = w.file.set_len(w.size) {
                tracing::error!(error = %t, "cannot cut a partly written journal line; the next start repairs it");
                w.broken = true;
            }
            return Err(e);
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        let first = w.seq + 1;
        w.seq = seq;
        w.head = head;
        w.size += lines.len() as u64;
        self.dirty.store(true, Ordering::Release);
        if w.size >= self.opts.max_segment_bytes {
            // The entries are written; a failed rotation is retried on the next.
            if let Err(e) = self.rotate(w) {
                tracing::error!(error = %e, "journal rotation failed; will retry");
            }
        }
        Ok(first)
    }

    fn rotate(&self, w: &mut Writer) -> io::Result<()> {
        w.file.sync_data()?;
        let segment = w.segment + 1;
        let file = Arc::new(open_append(&self.dir.join(segment_name(segment)))?);
        fsutil::sync_dir(&self.dir)?;
        *self.current.locked() = file.clone();
        w.file = file;
        w.segment = segment;
        w.size = 0;
        Ok(())
    }

    /// fsyncs now.
    pub fn flush(&self) -> io::Result<()> {
        let file = self.lock().file.clone();
        self.dirty.store(false, Ordering::Release);
        file.sync_data()
    }

    /// Writes what is queued, stops the fsync thread and fsyncs.
    pub fn close(&self) -> io::Result<()> {
        let queued = self.flush_queue();
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.flusher.locked().take() {
            let _ = h.join();
        }
        queued.and(self.flush())
    }

    /// How many `write(2)` calls wrote the entries so far (fewer than the
    /// entries when concurrent callers were committed together).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// The sequence number of the last entry.
    pub fn last_seq(&self) -> u64 {
        self.lock().seq
    }

    /// Checks the whole chain, up to the head this process last wrote.
    pub fn verify(&self) -> io::Result<Verification> {
        let (head_seq, head) = {
            let w = self.lock();
            (w.seq, w.head)
        };
        let mut prev = GENESIS;
        let mut expected_seq = 1u64;
        let mut entries = 0u64;
        let fail = |entries, t: Tamper| Ok(Verification { entries, error: Some(t) });
        for (_, path) in segments(&self.dir)? {
            let bytes = std::fs::read(&path)?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            for (lineno, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if line.is_empty() || expected_seq > head_seq {
                    continue;
                }
                let at = format!("{name} line {}", lineno + 1);
                let Some(entry) = json::from_slice(line).ok().and_then(Value::into_object) else {
                    return fail(entries, Tamper::NotAnEntry { at });
                };
                let seq = entry.get("seq").and_then(Value::as_int);
                if seq != i64::try_from(expected_seq).ok() {
                    return fail(entries, Tamper::OutOfSequence { at, found: seq, expected: expected_seq });
                }
                if entry.get("prev").and_then(Value::as_str) != Some(base64::encode(&prev).as_str()) {
                    return fail(
                        entries,
                        Tamper::ChainBroken { at, previous: expected_seq.saturating_sub(1) },
                    );
                }
                prev = hash(line);
                entries += 1;
                expected_seq += 1;
            }
        }
        if entries != head_seq {
            return fail(entries, Tamper::Truncated { found: entries, written: head_seq });
        }
        if prev != head {
            return fail(entries, Tamper::LastEdited(head_seq));
        }
        Ok(Verification { entries, error: None })
    }

    /// Every entry with a sequence number above `seq`, oldest first. Reads
    /// segments from the newest back only as far as needed.
    pub fn entries_since(&self, seq: u64) -> io::Result<Vec<Object>> {
        let mut out: Vec<Object> = Vec::new();
        'segments: for (_, path) in segments(&self.dir)?.into_iter().rev() {
            let bytes = std::fs::read(&path)?;
            for line in bytes.split(|&b| b == b'\n').rev() {
                let Some(entry) = json::from_slice(line).ok().and_then(Value::into_object) else { continue };
                let s =
                    entry.get("seq").and_then(Value::as_int).and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
                if s <= seq {
                    break 'segments;
                }
                out.push(entry);
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The newest `limit` entries matching `filter`, oldest first.
    pub fn tail(&self, limit: usize, filter: impl Fn(&Object) -> bool) -> io::Result<Vec<Object>> {
        let mut out: Vec<Object> = Vec::new();
        for (_, path) in segments(&self.dir)?.into_iter().rev() {
            if out.len() >= limit {
                break;
            }
            lines_backwards(&path, |line| {
                if let Some(entry) = json::from_slice(line).ok().and_then(Value::into_object) {
                    if filter(&entry) {
                        out.push(entry);
                    }
                }
                out.len() < limit
            })?;
        }
        out.reverse();
        Ok(out)
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Calls `f` on each line of the file at `path`, last first, until it
/// returns false. Reads backwards in blocks, so a `journal.tail` of a few
/// entries costs a few blocks, not whole segments, in time and memory.
fn lines_backwards(path: &Path, mut f: impl FnMut(&[u8]) -> bool) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    const BLOCK: u64 = 64 * 1024;
    let mut file = File::open(path)?;
    let mut end = file.seek(SeekFrom::End(0))?;
    // Bytes after the last newline seen so far (the start of a line whose
    // beginning is in an earlier block).
    let mut carry: Vec<u8> = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let mut block = vec![0u8; (end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&carry);
        let mut rest = block.as_slice();
        while let Some(i) = rest.iter().rposition(|&b| b == b'\n') {
            let line = &rest[i + 1..];
            if !line.is_empty() && !f(line) {
                return Ok(());
            }
            rest = &rest[..i];
        }
        carry = rest.to_vec();
        end = start;
    }
    if !carry.is_empty() {
        f(&carry);
    }
    Ok(())
}

fn int(v: u64) -> Int {
    // Sequence numbers and millisecond timestamps stay far below 2^53; clamp
    // rather than fail if they ever did not.
    let clamped = i64::try_from(v).unwrap_or(MAX_SAFE_INT).min(MAX_SAFE_INT);
    Int::new(clamped).unwrap_or(Int::from(0u32))
}

#[cfg(test)]
mod tests;
