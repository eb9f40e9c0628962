#!/usr/bin/env python3
"""The room view at the scale of a real account, measured on the release
agent (tests/perf.sh runs it as its scale section; not in CI):

- observe throughput into one room fed to 50,000 members in 5,000-event
  calls, beside the JSON parse of the same bytes (`cryptoidctl pdu
  canonical`) and one durable write of them (write + fsync);
- disk bytes written (/proc/<pid>/io) per 10-event observe into that room,
  and per signature there, beside the bytes of the request and of the
  journal entry;
- sign p99 in another room (`cryptoidctl bench`) idle, and while another
  client feeds 5,000-event calls;
- RSS while a hostile homeserver floods one room with distinct member
  joins (the peak in each half, and after it plus one one-second tick),
  and after a restart on the same view;
- the verified view: a signed history (`history-gen`: members joining,
  then their messages) fed as full events in 5,000-event calls, its rate
  beside the in-process floor of the same checks (`history-gen` measures
  it in the same run), and the agent's RSS before and at its peak.

Usage: tests/scale.py BIN_DIR WORK_DIR [--members N] [--flood N] [--seconds S]
                      [--verified N] [--only verified]
Prints one JSON object a line, then a table.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time

BIN, WORK = sys.argv[1], sys.argv[2]
ARGS = dict(zip(sys.argv[3::2], sys.argv[4::2]))
MEMBERS = int(ARGS.get("--members", 50_000))
FLOOD = int(ARGS.get("--flood", 500_000))
SECONDS = ARGS.get("--seconds", "5")
VERIFIED = int(ARGS.get("--verified", 50_000))
ONLY = ARGS.get("--only")
CHUNK = 5_000
SOCK = os.path.join(WORK, "scale.sock")
DATA = os.path.join(WORK, "scale-data")
RV = "org.matrix.msc4080"
ROWS = []


def report(**kv):
    ROWS.append(kv)
    print(json.dumps(kv), flush=True)


class Client:
    def __init__(self):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(SOCK)
        self.f = self.s.makefile("rb")
        self.n = 0

    def call(self, method, params):
        self.n += 1
        line = json.dumps({"jsonrpc": "2.0", "id": self.n, "method": method, "params": params}) + "\n"
        self.s.sendall(line.encode())
        answer = json.loads(self.f.readline())
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]


def start_agent(claimed=True):
    """The release agent on DATA. Sections 1-4 feed summaries and measure
    how the view stores them: they run with room_view = "claimed", where
    summaries are stored facts (under the default "verified" they are
    claims and cost almost nothing). The verified section feeds full events
    under the default."""
    config = "tests/bench.toml"
    if claimed:
        config = os.path.join(WORK, "scale-claimed.toml")
        text = open("tests/bench.toml").read().replace("[policy]\n", '[policy]\nroom_view = "claimed"\n', 1)
        open(config, "w").write(text)
    env = dict(os.environ, CRYPTOID_PINENTRY="none")
    p = subprocess.Popen(
        [f"{BIN}/cryptoid-agent", "--no-dbus", "--socket", SOCK, "--data-dir", DATA, "--config", config],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(WORK, "scale-agent.log"), "a"), env=env)
    for _ in range(200):
        if os.path.exists(SOCK):
            break
        time.sleep(0.05)
    subprocess.run([f"{BIN}/cryptoidctl", "--socket", SOCK, "unlock", "--passphrase-file", "-"],
                   input=b"scale passphrase\n", check=True, stdout=subprocess.DEVNULL)
    return p


def stop_agent(p):
    p.terminate()
    p.wait()
    if os.path.exists(SOCK):
        os.remove(SOCK)


def rss_kib(p):
    for line in open(f"/proc/{p.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def written(p):
    for line in open(f"/proc/{p.pid}/io"):
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def key(prefix, i):
    # 43 characters of unpadded Base64, distinct per i: a cryptoID's shape.
    return (f"{prefix}{i:012d}" + "A" * 43)[:43]


def joins(room_tag, start, n, depth0):
    return [{"event_id": f"${room_tag}{start + i:010d}" + "x" * 30, "depth": depth0 + start + i, "prev_events": [],
             "type": "m.room.member", "state_key": key(room_tag, start + i),
             "content": {"membership": "join", "mxid_mapping": {"user_room_key": key(room_tag, start + i),
                                                                   "user_id": f"@u{start + i}:example.org"}}}
            for i in range(n)]


def observe(c, room, events):
    return c.call("rooms.observe", {"room_id": room, "room_version": RV, "events": events})


def verified_section():
    """The verified view: a signed history of VERIFIED members joining and
    as many messages, fed as pdus; beside history-gen's in-process floor."""
    path = os.path.join(WORK, "history.json")
    out = subprocess.run([f"{BIN}/history-gen", path, str(VERIFIED), str(VERIFIED)], capture_output=True, check=True)
    floor = json.loads(out.stdout.decode().strip().splitlines()[-1])
    events = json.load(open(path))
    os.remove(path)
    agent = start_agent(claimed=False)
    c = Client()
    room = "!verified-scale:example.org"
    time.sleep(1.5)
    rss_before = rss_kib(agent)
    peak = rss_before
    verified = claimed = 0
    t0 = time.perf_counter()
    for start in range(0, len(events), CHUNK):
        v = c.call("rooms.observe", {"room_id": room, "room_version": RV, "pdus": events[start:start + CHUNK]})
        verified += v["verified"]
        claimed += v["claimed"]
        peak = max(peak, rss_kib(agent))
    secs = time.perf_counter() - t0
    del events
    time.sleep(1.5)
    rss_end = rss_kib(agent)
    stop_agent(agent)
    assert claimed == 0 and verified == floor["events"], (verified, claimed, floor)
    report(what="verified", events=verified, seconds=secs, events_per_s=verified / secs,
           floor_events_per_s=floor["floor_events_per_s"], rss_before_mib=rss_before / 1024,
           rss_peak_mib=peak / 1024, rss_end_mib=rss_end / 1024)


def print_verified(v):
    print(f"{'verified observe, 5,000-event calls (%d events)' % v['events']:<52} {v['events_per_s']:>10,.0f} ev/s"
          f"  {v['events_per_s'] / v['floor_events_per_s']:.2f}x the in-process checks ({v['floor_events_per_s']:,.0f} ev/s);"
          f" RSS {v['rss_before_mib']:.0f} MiB before, peak {v['rss_peak_mib']:.0f}, after {v['rss_end_mib']:.0f}")


def main():
    os.makedirs(WORK, exist_ok=True)
    if ONLY == "verified":
        verified_section()
        print()
        print_verified(ROWS[-1])
        return
    agent = start_agent()
    c = Client()

    # 1. A 50k-member room, fed in 5,000-event calls.
    room = "!big:example.org"
    feed_s = 0.0
    request_bytes = 0
    sample = None
    for start in range(0, MEMBERS, CHUNK):
        events = joins("B", start, min(CHUNK, MEMBERS - start), 10)
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "rooms.observe",
                           "params": {"room_id": room, "room_version": RV, "events": events}})
        request_bytes += len(body)
        sample = sample or body
        t = time.perf_counter()
        observe(c, room, events)
        feed_s += time.perf_counter() - t
    path = os.path.join(WORK, "sample.json")
    open(path, "w").write(sample)
    t = time.perf_counter()
    subprocess.run([f"{BIN}/cryptoidctl", "pdu", "canonical", path], stdout=subprocess.DEVNULL, check=True)
    parse_s = time.perf_counter() - t
    t = time.perf_counter()
    with open(os.path.join(WORK, "durable"), "wb") as f:
        f.write(sample.encode())
        f.flush()
        os.fsync(f.fileno())
    fsync_s = time.perf_counter() - t
    calls = max(1, MEMBERS // CHUNK)
    db_after_feed = os.path.getsize(os.path.join(DATA, "rooms", "rooms.redb"))
    report(what="observe", members=MEMBERS, database_mib=db_after_feed / 2**20, events_per_s=MEMBERS / feed_s, ms_per_call=1000 * feed_s / calls,
           floor_parse_ms=1000 * parse_s, floor_fsync_ms=1000 * fsync_s, request_bytes_per_call=request_bytes // calls)

    # 2. Disk bytes per 10-event observe and per signature in that room.
    before = written(agent)
    n = 100
    for i in range(n):
        observe(c, room, [{"event_id": f"$inc{i:04d}{j}" + "y" * 34, "depth": 10 + MEMBERS + i * 10 + j,
                           "prev_events": []} for j in range(10)])
    per_observe = (written(agent) - before) / n
    k = c.call("keys.create", {"room_id": room})["cryptoid"]
    tip = f"$tip" + "z" * 40
    top = 10 + MEMBERS + n * 10 + 10
    observe(c, room, [{"event_id": tip, "depth": top, "prev_events": []}])
    journal_dir = os.path.join(DATA, "journal")
    journal_before = sum(os.path.getsize(os.path.join(journal_dir, f)) for f in os.listdir(journal_dir))
    time.sleep(1.5)
    before = written(agent)
    sigs = 200
    for i in range(sigs):
        pdu = {"auth_events": [], "content": {"body": f"hello {i}", "msgtype": "m.text"}, "depth": top + 1,
               "origin": k, "origin_server_ts": int(time.time() * 1000), "prev_events": [tip], "room_id": room,
               "sender": k, "type": "m.room.message", "unsigned": {}}
        c.call("sign.pdu", {"room_version": RV, "pdu": pdu})
    time.sleep(2.5)  # two flushes
    per_sig = (written(agent) - before) / sigs
    journal_after = sum(os.path.getsize(os.path.join(journal_dir, f)) for f in os.listdir(journal_dir))
    report(what="disk", bytes_per_10_event_observe=per_observe, bytes_per_signature=per_sig,
           journal_bytes_per_signature=(journal_after - journal_before) / sigs)

    # 3. Sign p99 in another room, idle and during a feed.
    def bench():
        out = subprocess.run([f"{BIN}/cryptoidctl", "--socket", SOCK, "bench", "--connections", "1",
                              "--seconds", SECONDS, "--json"], capture_output=True, check=True)
        return json.loads(out.stdout.decode().strip().splitlines()[-1])
    idle = bench()
    stop = threading.Event()

    def feeder():
        f = Client()
        start = 0
        while not stop.is_set():
            observe(f, "!feed:example.org", joins("F", start, CHUNK, 10))
            start += CHUNK
    t = threading.Thread(target=feeder)
    t.start()
    busy = bench()
    stop.set()
    t.join()
    report(what="sign_during_feed", idle_p99_us=idle["p99_us"], busy_p99_us=busy["p99_us"],
           idle_per_s=idle["sigs_per_sec"], busy_per_s=busy["sigs_per_sec"])

    # 4. RSS under a hostile flood of distinct joins, and after a restart.
    hostile = "!hostile:example.org"
    # The highest RSS seen after a call, in each half of the flood: flat if
    # the second is no higher than the first.
    peak = [0, 0]
    t0 = time.perf_counter()
    for start in range(0, FLOOD, CHUNK):
        observe(c, hostile, joins("H", start, min(CHUNK, FLOOD - start), 10))
        half = 0 if start < FLOOD // 2 else 1
        peak[half] = max(peak[half], rss_kib(agent))
    flood_s = time.perf_counter() - t0
    time.sleep(1.5)  # one tick: freed request trees are handed back there
    rss_end = rss_kib(agent)
    stop_agent(agent)
    agent = start_agent()
    c = Client()
    observe(c, hostile, joins("H", FLOOD, 10, 10))
    time.sleep(1.5)  # the same steady state as after the flood: one tick
    rss_restart = rss_kib(agent)
    stop_agent(agent)
    db = os.path.getsize(os.path.join(DATA, "rooms", "rooms.redb"))
    report(what="flood", joins=FLOOD, seconds=flood_s, rss_peak_first_half_mib=peak[0] / 1024,
           rss_peak_second_half_mib=peak[1] / 1024, rss_end_mib=rss_end / 1024,
           rss_after_restart_mib=rss_restart / 1024, database_mib=db / 2**20)

    verified_section()
    print()
    o, d, s, f, v = ROWS
    print(f"{'scale figure':<52} {'value':>14}  beside")
    print(f"{'observe, 5,000-event calls into a %d-member room' % o['members']:<52} {o['events_per_s']:>10,.0f} ev/s"
          f"  {o['ms_per_call']:.0f} ms a call = {o['ms_per_call'] / o['floor_parse_ms']:.1f}x parsing its bytes"
          f" ({o['floor_parse_ms']:.0f} ms), {o['ms_per_call'] / max(o['floor_fsync_ms'], 0.01):.1f}x one durable write"
          f" ({o['floor_fsync_ms']:.1f} ms)")
    print(f"{'disk written per 10-event observe':<52} {d['bytes_per_10_event_observe']:>11,.0f} B")
    print(f"{'disk written per signature (all, journal incl.)':<52} {d['bytes_per_signature']:>11,.0f} B"
          f"  journal entry {d['journal_bytes_per_signature']:,.0f} B")
    print(f"{'sign p99 in another room during a feed':<52} {s['busy_p99_us']:>11,} us"
          f"  {s['busy_p99_us'] / max(s['idle_p99_us'], 1):.1f}x idle ({s['idle_p99_us']} us)")
    print(f"{'RSS during a %d-join flood (peak 1st, 2nd half)' % f['joins']:<52} {f['rss_peak_first_half_mib']:>7.0f}, {f['rss_peak_second_half_mib']:.0f} MiB"
          f"  after it {f['rss_end_mib']:.0f} MiB,"
          f"  after a restart {f['rss_after_restart_mib']:.0f} MiB ({f['rss_end_mib'] / max(f['rss_after_restart_mib'], 1):.2f}x);"
          f" database {f['database_mib']:.0f} MiB; {f['seconds']:.0f} s")


    print_verified(v)


main()
