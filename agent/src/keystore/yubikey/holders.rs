//! Who holds a card exclusively: on a sharing violation the error names the
//! process, when it is one of the usual suspects, and how to release it.

/// Programs known to open smart cards exclusively, with the way out.
const SUSPECTS: &[(&str, &str)] = &[
    ("scdaemon", "run `gpgconf --kill scdaemon`, or add `pcsc-shared` to ~/.gnupg/scdaemon.conf"),
    ("gpg-agent", "run `gpgconf --kill scdaemon`, or add `pcsc-shared` to ~/.gnupg/scdaemon.conf"),
    ("yubikey-agent", "stop it (`systemctl --user stop yubikey-agent`)"),
    ("ykman", "wait for it to finish"),
    ("pcsc_scan", "stop it"),
];

/// `": scdaemon (pid 123) holds it; run ..."`, or a generic hint.
pub fn describe() -> String {
    let mut found = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else { continue };
            let comm = comm.trim();
            if let Some((name, fix)) = SUSPECTS.iter().find(|(n, _)| *n == comm) {
                found.push(format!("{name} (pid {pid}) may hold it: {fix}"));
            }
        }
    }
    if found.is_empty() {
        "; close the program using it (often scdaemon: `gpgconf --kill scdaemon`)".into()
    } else {
        format!("; {}", found.join("; "))
    }
}
