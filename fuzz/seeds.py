#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets from the public vectors in
protocol/tests/vectors/ (copied from shared/vectors/). Run from anywhere;
writes fuzz/corpus/<target>/seed-*. Existing findings are kept."""
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
VECTORS = HERE.parent / "protocol" / "tests" / "vectors"
NOW = 1_800_000_000_000  # the fixed clock of service_sign


def load(name):
    return json.loads((VECTORS / name).read_text())


spec, msc, extra = load("spec.json"), load("msc4080.json"), load("extra.json")

json_seeds = [c["input"] for c in spec["canonical_json"]]
json_seeds += [c["input"] for c in spec["must_reject"]]
pdus = [c["input_pdu"] for c in msc["cases"]]
pdus += [c["input"] for c in extra["synapse"]["cases"] if isinstance(c.get("input"), dict)]
pdus += [c["input"] for c in extra["ruma"]["sign_event"] if isinstance(c.get("input"), dict)]
json_seeds += [json.dumps(p, ensure_ascii=False) for p in pdus]
json_seeds += ["[" * 200 + "]" * 200, '"\\ud83d\\ude00"', "9007199254740991", "-0", '{"a":[1,{"b":null}]}']


def request(method, params, id_=1):
    return json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})


rpc_seeds = [
    request("agent.hello", {}),
    request("agent.unlock", {"passphrase": "x", "backend": "soft"}),
    request("keys.create", {"room_id": "!r:x", "user_id": "@u:x"}),
    request("keys.list", {"room_id": "!r:x"}),
    request("otk.generate", {"count": 3}),
    request("otk.claim", {"cryptoid": "A" * 43, "room_id": "!r:x"}),
    request("otk.mark_published", {"cryptoids": ["A" * 43]}),
    request("journal.tail", {"limit": 5, "room_id": "!r:x"}),
    request("confirm.answer", {"id": 1, "allow": True, "remember_secs": 60}),
    request("rooms.observe", {"room_id": "!r:x", "events": [{"event_id": "$" + "a" * 43, "depth": 3, "prev_events": []}]}),
    '{"jsonrpc":"2.0","id":"s","method":"sign.pdu"}',
    '{"jsonrpc":"1.0","id":1,"method":"x"}',
    '{"jsonrpc":"2.0","id":1.5,"method":"x"}',
    '{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}',
    '{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}',
]
rpc_seeds += [request("sign.pdu", {"room_version": c["room_version"], "pdu": c["input_pdu"]}) for c in msc["cases"]]


def own(pdu):
    """A vector PDU made the held key's, in the fuzzed room, now."""
    p = dict(pdu)
    p.update(sender="@SELF@", room_id="@ROOM@", origin_server_ts=NOW, depth=101,
             prev_events=["$" + "f" * 43])
    if "origin" in p:
        p["origin"] = "@SELF@"
    if p.get("type") == "m.room.member":
        p["state_key"] = "@SELF@"
    return p


service_seeds = []
for c in msc["cases"]:
    p = own(c["input_pdu"])
    rv = c["room_version"]
    service_seeds.append(request("sign.pdu", {"room_version": rv, "pdu": p}))
    service_seeds.append(request("policy.check", {"room_version": rv, "pdu": p}))
    intent = {"type": p["type"], "content": p.get("content", {})}
    if "state_key" in p:
        intent["state_key"] = p["state_key"]
    service_seeds.append(request("sign.pdu", {"room_version": rv, "pdu": p, "intent": intent}))
    service_seeds.append(request("sign.batch", {"room_version": rv, "pdus": [p, dict(p, depth=102)]}))

# Authorization cases in the differential test's format: a v11 room of
# alice (create, join, power levels, invite join rule) and candidates.
A, B = "@alice:a.example", "@bob:b.example"


def ev(ty, sk, sender, content, auth=(), prev=("$p",)):
    e = {"type": ty, "sender": sender, "room_id": "!r:a.example", "content": content, "depth": 5,
         "origin_server_ts": 1, "prev_events": list(prev), "auth_events": list(auth),
         "hashes": {"sha256": "aGFzaA"}, "signatures": {}}
    if sk is not None:
        e["state_key"] = sk
    return e


room = [ev("m.room.create", "", A, {"room_version": "11"}, prev=()),
        ev("m.room.member", A, A, {"membership": "join"}),
        ev("m.room.power_levels", "", A, {"users": {A: 100}, "ban": 50}),
        ev("m.room.join_rules", "", A, {"join_rule": "invite"})]
candidates = [ev("m.room.member", B, B, {"membership": "join"}),
              ev("m.room.member", B, A, {"membership": "invite"}),
              ev("m.room.power_levels", "", A, {"users": {A: 100, B: 100}}),
              ev("m.room.message", None, A, {"body": "hi"}),
              ev("m.room.redaction", None, B, {"redacts": "$x"}),
              ev("m.room.create", "", A, {"room_version": "11"}, prev=())]
auth_seeds = [json.dumps({"room_version": "11", "event": c, "auth_events": room}) for c in candidates]
auth_seeds += [json.dumps({"room_version": v, "event": candidates[2], "auth_events": room[:3]}) for v in ("1", "10", "12", "org.matrix.msc4080")]

for target, seeds in (("json_parse", json_seeds), ("rpc_line", rpc_seeds + json_seeds[:8]),
                      ("service_sign", service_seeds), ("auth_rules", auth_seeds)):
    out = HERE / "corpus" / target
    out.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(seeds):
        (out / f"seed-{i:03}").write_text(s)
    print(f"{target}: {len(seeds)} seeds in {out}")
