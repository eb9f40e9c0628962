use super::*;

fn entry(n: u64) -> Object {
    let mut o = Object::new();
    o.insert("method".into(), Value::String(format!("m{n}")));
    o
}

fn open(dir: &Path, max: u64) -> Journal {
    let opts = Options { max_segment_bytes: max, fsync_interval: Duration::from_millis(5) };
    Journal::open(dir.to_path_buf(), opts).expect("open").0
}

fn lines(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    segments(dir)
        .expect("segments")
        .into_iter()
        .map(|(_, p)| {
            let text = std::fs::read_to_string(&p).expect("read");
            (p, text.lines().map(str::to_owned).collect())
        })
        .collect()
}

fn rewrite(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).expect("write");
}

#[test]
fn chain_verifies_and_survives_restart() {
    let d = tempfile::tempdir().expect("tempdir");
    let j = open(d.path(), 1 << 20);
    for n in 0..10 {
        j.append(entry(n), 1000 + n).expect("append");
    }
    assert_eq!(j.verify().expect("verify"), Verification { entries: 10, error: None });
    drop(j);
    let j = open(d.path(), 1 << 20);
    assert_eq!(j.last_seq(), 10);
    j.append(entry(10), 2000).expect("append after restart");
    assert_eq!(j.verify().expect("verify").entries, 11);
    let tail = j.tail(3, |_| true).expect("tail");
    assert_eq!(tail.iter().map(|e| e["seq"].as_int().unwrap_or(0)).collect::<Vec<_>>(), [9, 10, 11]);
}

#[test]
fn detects_edited_removed_and_reordered_entries() {
    type Edit = fn(&mut Vec<String>);
    let at = |line: u32| format!("journal-000001.jsonl line {line}");
    let cases: [(&str, Edit, Tamper); 4] = [
        ("edited", |l| l[3] = l[3].replace("m3", "mX"), Tamper::ChainBroken { at: at(5), previous: 4 }),
        ("removed", |l| drop(l.remove(4)), Tamper::OutOfSequence { at: at(5), found: Some(6), expected: 5 }),
        ("reordered", |l| l.swap(2, 3), Tamper::OutOfSequence { at: at(3), found: Some(4), expected: 3 }),
        ("last edited", |l| l[9] = l[9].replace("m9", "mX"), Tamper::LastEdited(10)),
    ];
    for (what, tamper, expected) in cases {
        let d = tempfile::tempdir().expect("tempdir");
        let j = open(d.path(), 1 << 20);
        for n in 0..10 {
            j.append(entry(n), 1000).expect("append");
        }
        let (path, mut l) = lines(d.path()).remove(0);
        tamper(&mut l);
        rewrite(&path, &l);
        let v = j.verify().expect("verify");
        assert_eq!(v.error, Some(expected), "{what}");
    }
}

#[test]
fn truncated_tail_is_detected_while_running() {
    let d = tempfile::tempdir().expect("tempdir");
    let j = open(d.path(), 1 << 20);
    for n in 0..5 {
        j.append(entry(n), 1000).expect("append");
    }
    let (path, mut l) = lines(d.path()).remove(0);
    l.pop();
    rewrite(&path, &l);
    assert_eq!(j.verify().expect("verify").error, Some(Tamper::Truncated { found: 4, written: 5 }));
}

#[test]
fn torn_last_line_is_cut_at_open() {
    let d = tempfile::tempdir().expect("tempdir");
    let j = open(d.path(), 1 << 20);
    for n in 0..3 {
        j.append(entry(n), 1000).expect("append");
    }
    drop(j);
    let path = d.path().join(segment_name(1));
    let mut f = OpenOptions::new().append(true).open(&path).expect("open");
    f.write_all(b"{\"method\":\"half").expect("torn write");
    drop(f);
    let (j, rec) = Journal::open(d.path().to_path_buf(), Options::default()).expect("reopen");
    assert_eq!(rec.torn_bytes, 15);
    assert_eq!(j.last_seq(), 3);
    j.append(entry(3), 1000).expect("append");
    assert_eq!(j.verify().expect("verify"), Verification { entries: 4, error: None });
}

#[test]
fn rotation_keeps_one_chain() {
    let d = tempfile::tempdir().expect("tempdir");
    let j = open(d.path(), 300);
    for n in 0..40 {
        j.append(entry(n), 1000).expect("append");
    }
    let segs = lines(d.path());
    assert!(segs.len() > 3, "rotated into {} segments", segs.len());
    assert_eq!(j.verify().expect("verify"), Verification { entries: 40, error: None });
    drop(j);
    // Reopen right after a rotation (empty newest segment) and go on.
    let j = open(d.path(), 300);
    j.append(entry(40), 1000).expect("append");
    assert_eq!(j.verify().expect("verify").entries, 41);
    // Removing a whole middle segment is caught.
    std::fs::remove_file(&segs[1].0).expect("rm");
    assert!(j.verify().expect("verify").error.is_some());
}

#[test]
fn tail_reads_lines_across_block_and_segment_boundaries() {
    let d = tempfile::tempdir().expect("tempdir");
    // Lines of varied length in 200 KiB segments: lines straddle the 64 KiB
    // blocks the tail reads backwards in, and segments rotate.
    let j = open(d.path(), 200 * 1024);
    for n in 0..3000u64 {
        let mut o = entry(n);
        o.insert("pad".into(), Value::String("x".repeat((n * 37 % 500) as usize)));
        j.append(o, 1000 + n).expect("append");
    }
    assert!(segments(d.path()).expect("segments").len() > 3);
    let seqs = |v: &[Object]| v.iter().map(|e| e["seq"].as_int().unwrap_or(0)).collect::<Vec<_>>();
    let all = j.tail(10_000, |_| true).expect("tail");
    assert_eq!(seqs(&all), (1..=3000).collect::<Vec<i64>>());
    let last = j.tail(5, |_| true).expect("tail");
    assert_eq!(seqs(&last), [2996, 2997, 2998, 2999, 3000]);
    let some = j.tail(3, |e| e["method"].as_str().is_some_and(|m| m.ends_with("00"))).expect("filtered");
    assert_eq!(seqs(&some), [2701, 2801, 2901]);
}

/// The line spliced from an entry encoded outside the lock is exactly the
/// canonical JSON of the whole entry, wherever its keys sort relative to
/// `prev`, `seq` and `ts`.
#[test]
fn a_spliced_line_is_the_canonical_json_of_the_whole_entry() {
    let keys: [&[&str]; 6] = [
        &[],
        &["a"],
        &["method", "pre", "prevx", "s", "seq0", "sz", "t", "tz", "zz", "ä"],
        &["u", "v"],
        &["prev", "seq", "ts"],
        &["client", "outcome", "reasons"],
    ];
    for set in keys {
        let mut fields = Object::new();
        for (i, k) in set.iter().enumerate() {
            let v = if i % 2 == 0 {
                Value::from(format!("{k} \u{1} \"x\""))
            } else {
                Value::Int(Int::from(i as u32))
            };
            fields.insert((*k).to_owned(), v);
        }
        let prev = [7u8; 32];
        let mut spliced = Vec::new();
        Body::encode(&fields).line(&prev, 42, 1_700_000_000_000, &mut spliced);
        let mut whole = fields.clone();
        whole.insert("prev".into(), Value::String(base64::encode(&prev)));
        whole.insert("seq".into(), Value::Int(int(42)));
        whole.insert("ts".into(), Value::Int(int(1_700_000_000_000)));
        assert_eq!(
            String::from_utf8_lossy(&spliced),
            json::to_canonical_string(&Value::Object(whole)),
            "keys {set:?}"
        );
    }
}

/// Many writers at once: every append gets its own sequence number, the
/// file holds each entry once, in a chain that verifies.
#[test]
fn concurrent_appends_get_their_own_sequence_numbers_and_chain() {
    let d = tempfile::tempdir().expect("tempdir");
    let j = Arc::new(open(d.path(), 1 << 20));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let j = j.clone();
            std::thread::spawn(move || {
                (0..250u64).map(|n| j.append(entry(t * 1000 + n), n).expect("append")).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads.into_iter().flat_map(|t| t.join().expect("thread")).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=2000).collect::<Vec<_>>());
    assert_eq!(j.verify().expect("verify"), Verification { entries: 2000, error: None });
    let written: Vec<String> = lines(d.path()).into_iter().flat_map(|(_, l)| l).collect();
    let mut methods: Vec<String> = written
        .iter()
        .filter_map(|l| json::from_str(l).ok())
        .filter_map(|v| {
            v.as_object().and_then(|o| o.get("method")).and_then(Value::as_str).map(str::to_owned)
        })
        .collect();
    methods.sort();
    methods.dedup();
    assert_eq!(methods.len(), 2000);
}

/// Entries queued before a commit are written together, in queue order, in
/// one write; each owner then finds its own outcome.
#[test]
fn queued_entries_are_committed_in_one_write_in_order() {
    let d = tempfile::tempdir().expect("tempdir");
    let j = open(d.path(), 1 << 20);
    j.append(entry(0), 1).expect("append");
    let before = j.writes();
    let tickets: Vec<Ticket> = (1..=5).map(|n| j.enqueue(entry(n), n)).collect();
    assert_eq!(j.last_seq(), 1, "nothing is written before a commit");
    assert_eq!(j.commit(tickets[4]).expect("commit the last"), 6);
    assert_eq!(j.writes(), before + 1);
    let seqs: Vec<u64> = tickets[..4].iter().map(|t| j.commit(*t).expect("done already")).collect();
    assert_eq!(seqs, [2, 3, 4, 5]);
    assert_eq!(j.writes(), before + 1);
    let methods: Vec<String> = lines(d.path())
        .into_iter()
        .flat_map(|(_, l)| l)
        .filter_map(|l| json::from_str(&l).ok())
        .filter_map(|v| {
            v.as_object().and_then(|o| o.get("method")).and_then(Value::as_str).map(str::to_owned)
        })
        .collect();
    assert_eq!(methods, ["m0", "m1", "m2", "m3", "m4", "m5"]);
    assert_eq!(j.verify().expect("verify"), Verification { entries: 6, error: None });
}
