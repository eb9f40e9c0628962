#!/usr/bin/env python3
"""Differential test of the authorization rules: the agent's
(`cryptoid_protocol::auth`, through the `auth-oracle` binary) against
Synapse's own `synapse.event_auth`, on generated rooms and candidate events.

    auth_diff.py ORACLE [--cases N] [--seed S] [--regressions FILE]

Run with the Python of the venv `tests/synapse.sh install` makes. Each case
is a room (create, the creator's join, power levels, join rules, members in
every membership, a third-party invite) in a room version drawn from 1-12,
and a candidate event: power changes by members with and without power,
bans, kicks, unbans, joins under each join rule (restricted ones with and
without an authorising member), invites (third-party ones signed and
forged), knocks, leaves, redactions, aliases, state under others' user IDs,
create events, with its auth events sometimes dropped, doubled or padded.
Both judge each case; any disagreement is printed with the case and makes
the exit status 1. Cases in --regressions (JSON lines with the verdict
Synapse gave) run first: each is a disagreement found once, kept.
"""

import argparse
import asyncio
import copy
import json
import random
import subprocess
import sys

from signedjson.key import generate_signing_key, encode_verify_key_base64
from signedjson.sign import sign_json
from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
from synapse.event_auth import (
    check_state_dependent_auth_rules,
    check_state_independent_auth_rules,
)
from synapse.events import make_event_from_dict

VERSIONS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]
# The versions more often than the others.
WEIGHTS = [1, 1, 1, 1, 1, 2, 2, 2, 2, 6, 6, 6]
ALICE, BOB, CAROL, DAVE, ERIN = (
    "@alice:a.example",
    "@bob:b.example",
    "@carol:a.example",
    "@dave:c.example",
    "@erin:b.example",
)
USERS = [ALICE, BOB, CAROL, DAVE, ERIN]
LEVELS = [0, 0, 10, 50, 50, 75, 100, 100]
TPI_KEY = generate_signing_key("1")
OTHER_KEY = generate_signing_key("1")


class Store:
    """What check_state_independent_auth_rules fetches auth events from."""

    def __init__(self, events):
        self.events = events

    async def get_events(self, ids, redact_behaviour=None, get_prev_content=False, allow_rejected=False):
        return {i: self.events[i] for i in ids if i in self.events}


class Room:
    def __init__(self, rng, version):
        self.rng = rng
        self.version = version
        self.rv = KNOWN_ROOM_VERSIONS[version]
        self.events = {}  # id -> EventBase
        self.dicts = {}  # id -> the federation JSON
        self.state = {}  # (type, state_key) -> id
        self.depth = 1
        self.counter = 0
        self.room_id = "!room:a.example"
        v12 = version == "12"
        content = {"room_version": version}
        if not self.rv.implicit_room_creator or rng.random() < 0.1:
            content["creator"] = ALICE if rng.random() < 0.95 else BOB
        if rng.random() < 0.1:
            content["m.federate"] = False
        self.additional = []
        if v12 and rng.random() < 0.3:
            self.additional = [CAROL]
            content["additional_creators"] = self.additional
        create = {"type": "m.room.create", "state_key": "", "sender": ALICE, "content": content}
        self.create_id = self.add(create, prev=[], auth=[], room=not v12)
        if v12:
            self.room_id = "!" + self.create_id[1:]
        self.add_state("m.room.member", ALICE, ALICE, {"membership": "join"}, prev=[self.create_id])
        if rng.random() < 0.9:
            self.add_state("m.room.power_levels", "", ALICE, self.random_levels())
        if rng.random() < 0.9:
            rule = rng.choice(["public", "invite", "knock", "restricted", "knock_restricted", "private"])
            jr = {"join_rule": rule}
            if rule in ("restricted", "knock_restricted"):
                jr["allow"] = [{"type": "m.room_membership", "room_id": "!other:a.example"}]
            self.add_state("m.room.join_rules", "", ALICE, jr)
        for user in USERS[1:]:
            m = rng.choice(["join", "join", "invite", "ban", "leave", "knock", None])
            if m is not None:
                sender = user if m in ("join", "leave", "knock") else ALICE
                self.add_state("m.room.member", user, sender, {"membership": m})
        self.tpi_token = None
        if rng.random() < 0.5:
            self.tpi_token = "tok%d" % rng.randrange(100)
            tpi = {"display_name": "x", "key_validity_url": "https://id.example/v", "public_key": encode_verify_key_base64(TPI_KEY.verify_key)}
            if rng.random() < 0.3:
                tpi = {"display_name": "x", "public_keys": [{"public_key": encode_verify_key_base64(TPI_KEY.verify_key)}]}
            self.add_state("m.room.third_party_invite", self.tpi_token, self.rng.choice([ALICE, BOB]), tpi)

    def level(self):
        v = self.rng.choice(LEVELS)
        if not self.rv.enforce_int_power_levels:
            r = self.rng.random()
            if r < 0.1:
                return str(v)
            if r < 0.12:
                return self.rng.choice([True, False, None, " 50", "1_0", "-5"])
        elif self.rng.random() < 0.02:
            return self.rng.choice([True, None, "50"])
        return v

    def random_levels(self):
        rng = self.rng
        pl = {}
        users = {}
        for u in USERS:
            if rng.random() < 0.5:
                users[u] = self.level()
        if self.version != "12" or rng.random() < 0.1:
            users[ALICE] = 100
        pl["users"] = users
        for k in ["ban", "kick", "redact", "invite", "state_default", "events_default", "users_default"]:
            if rng.random() < 0.5:
                pl[k] = self.level()
        if rng.random() < 0.5:
            pl["events"] = {t: self.level() for t in rng.sample(["m.room.name", "m.room.power_levels", "m.room.topic", "m.room.message", "m.room.redaction"], 2)}
        if rng.random() < 0.2:
            pl["notifications"] = {"room": self.level()}
        return pl

    def event_id_for(self, d):
        self.counter += 1
        return "$e%d:%s" % (self.counter, d["sender"].split(":", 1)[1] if ":" in d["sender"] else "x")

    def build(self, d, prev, auth, room=True, depth=None):
        d = dict(d)
        if room:
            d["room_id"] = self.room_id
        d["origin_server_ts"] = 1700000000000 + self.depth
        d["depth"] = depth if depth is not None else self.depth + 1
        d["hashes"] = {"sha256": "aGFzaA"}
        d["signatures"] = {}
        if self.rv.event_format.__eq__(1) or self.version in ("1", "2"):
            d["event_id"] = self.event_id_for(d)
            d["prev_events"] = [[p, {"sha256": "aGFzaA"}] for p in prev]
            d["auth_events"] = [[a, {"sha256": "aGFzaA"}] for a in auth]
        else:
            d["prev_events"] = list(prev)
            d["auth_events"] = list(auth)
        return d

    def add(self, d, prev, auth, room=True):
        d = self.build(d, prev, auth, room)
        ev = make_event_from_dict(copy.deepcopy(d), self.rv)
        self.events[ev.event_id] = ev
        self.dicts[ev.event_id] = d
        self.depth += 1
        if "state_key" in d:
            self.state[(d["type"], d["state_key"])] = ev.event_id
        return ev.event_id

    def auth_for(self, d):
        """The auth events a server would pick for `d` from the state."""
        keys = [("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", d["sender"])]
        if d["type"] == "m.room.member":
            m = d["content"].get("membership")
            if m in ("join", "invite", "knock"):
                keys.append(("m.room.join_rules", ""))
            keys.append(("m.room.member", d["state_key"]))
            tpi = d["content"].get("third_party_invite")
            if isinstance(tpi, dict) and isinstance(tpi.get("signed"), dict) and "token" in tpi["signed"]:
                keys.append(("m.room.third_party_invite", tpi["signed"]["token"]))
            via = d["content"].get("join_authorised_via_users_server")
            if isinstance(via, str):
                keys.append(("m.room.member", via))
        ids = []
        for k in keys:
            i = self.state.get(k)
            if i and i not in ids:
                if self.version == "12" and i == self.create_id:
                    continue
                ids.append(i)
        return ids

    def add_state(self, ty, sk, sender, content, prev=None):
        d = {"type": ty, "state_key": sk, "sender": sender, "content": content}
        return self.add(d, prev if prev is not None else [self.last()], self.auth_for(d))

    def last(self):
        return list(self.events)[-1]


def candidate(room):
    """A random candidate event (a dict) and the prev_events it cites."""
    rng = room.rng
    sender = rng.choice(USERS)
    kind = rng.choice(["member"] * 6 + ["power"] * 4 + ["message", "state", "redaction", "tpi", "aliases", "others_state", "create"])
    prev = [room.last()]
    if kind == "member":
        target = rng.choice(USERS) if rng.random() < 0.5 else sender
        m = rng.choice(["join", "invite", "leave", "ban", "knock", "unknown"])
        content = {"membership": m}
        if m == "join" and rng.random() < 0.4:
            content["join_authorised_via_users_server"] = rng.choice(USERS)
        if m == "invite" and room.tpi_token and rng.random() < 0.4:
            signed = {"mxid": target, "token": room.tpi_token if rng.random() < 0.9 else "nope", "sender": sender}
            key = TPI_KEY if rng.random() < 0.8 else OTHER_KEY
            signed = sign_json(signed, "id.example", key)
            content["third_party_invite"] = {"display_name": "x", "signed": signed}
        if rng.random() < 0.03:
            del content["membership"]
        if m == "join" and target == ALICE and rng.random() < 0.3:
            prev = [room.create_id]
        return {"type": "m.room.member", "state_key": target, "sender": sender, "content": content}, prev
    if kind == "power":
        old = {}
        pl_id = room.state.get(("m.room.power_levels", ""))
        if pl_id:
            old = copy.deepcopy(room.dicts[pl_id]["content"])
        new = copy.deepcopy(old) if rng.random() < 0.7 else room.random_levels()
        for _ in range(rng.randrange(1, 3)):
            what = rng.random()
            if what < 0.5:
                new.setdefault("users", {})[rng.choice(USERS)] = room.level()
            elif what < 0.65 and new.get("users"):
                new["users"].pop(rng.choice(list(new["users"])), None)
            elif what < 0.9:
                new[rng.choice(["ban", "kick", "redact", "invite", "state_default", "events_default", "users_default"])] = room.level()
            elif what < 0.95:
                new.setdefault("events", {})[rng.choice(["m.room.name", "m.room.power_levels"])] = room.level()
            else:
                new.setdefault("notifications", {})["room"] = room.level()
        if rng.random() < 0.03:
            new["ban"] = "fifty"
        if rng.random() < 0.03:
            new.setdefault("users", {})["not-a-user"] = 10
        return {"type": "m.room.power_levels", "state_key": "", "sender": sender, "content": new}, prev
    if kind == "message":
        return {"type": "m.room.message", "sender": sender, "content": {"msgtype": "m.text", "body": "hi"}}, prev
    if kind == "state":
        ty = rng.choice(["m.room.name", "m.room.topic", "m.room.join_rules", "m.room.history_visibility"])
        return {"type": ty, "state_key": "", "sender": sender, "content": {"name": "n"}}, prev
    if kind == "others_state":
        return {"type": "m.custom", "state_key": rng.choice(USERS + ["@x", "plain"]), "sender": sender, "content": {}}, prev
    if kind == "redaction":
        target = rng.choice(list(room.events))
        d = {"type": "m.room.redaction", "sender": sender, "content": {}}
        if room.rv.updated_redaction_rules:
            d["content"]["redacts"] = target
        else:
            d["redacts"] = target if rng.random() < 0.9 else "$other:z.example"
        return d, prev
    if kind == "tpi":
        return {"type": "m.room.third_party_invite", "state_key": "t%d" % rng.randrange(9), "sender": sender, "content": {"public_key": "abc"}}, prev
    if kind == "aliases":
        sk = sender.split(":", 1)[1] if rng.random() < 0.7 else "z.example"
        return {"type": "m.room.aliases", "state_key": sk, "sender": sender, "content": {"aliases": []}}, prev
    # create
    content = {"room_version": rng.choice([room.version, "99"])}
    if rng.random() < 0.5:
        content["creator"] = sender
    return {"type": "m.room.create", "state_key": "", "sender": sender, "content": content}, ([] if rng.random() < 0.7 else prev)


def perturb(room, auth):
    """Sometimes cite wrong auth events, as a lying server might."""
    rng = room.rng
    auth = list(auth)
    r = rng.random()
    if r < 0.05 and auth:
        auth.pop(rng.randrange(len(auth)))
    elif r < 0.08 and auth:
        auth.append(auth[0])
    elif r < 0.12:
        other = rng.choice(list(room.events))
        if other not in auth:
            auth.append(other)
    elif r < 0.15 and room.version == "12":
        auth.append(room.create_id)
    elif r < 0.17:
        auth.append(room.add({"type": "m.room.message", "sender": ALICE, "content": {"body": "x"}},
                             [room.last()], room.auth_for({"type": "m.room.message", "sender": ALICE})))
    elif r < 0.19 and room.version != "12":
        # Another create for the room, cited in place of the room's own.
        other = room.add({"type": "m.room.create", "state_key": "", "sender": ALICE,
                          "content": {"room_version": room.version, "creator": ALICE}}, [], [])
        auth = [other if a == room.create_id else a for a in auth]
    return auth


async def synapse_verdict(room, d):
    try:
        ev = make_event_from_dict(copy.deepcopy(d), room.rv)
    except Exception as e:  # noqa: BLE001 - a malformed event is a rejection
        return False, "build: %r" % e
    try:
        await check_state_independent_auth_rules(Store(room.events), ev)
        auth = [room.events[i] for i in ev.auth_event_ids() if i in room.events]
        check_state_dependent_auth_rules(ev, auth)
    except Exception as e:  # noqa: BLE001 - every failure is a rejection
        return False, "%s: %s" % (type(e).__name__, e)
    return True, ""


def make_case(rng):
    version = rng.choices(VERSIONS, WEIGHTS)[0]
    room = Room(rng, version)
    d, prev = candidate(room)
    if d["type"] == "m.room.create":
        auth = [] if rng.random() < 0.8 else [room.create_id]
        d = room.build(d, prev, auth, room=version != "12")
    else:
        auth = perturb(room, room.auth_for(d))
        d = room.build(d, prev, auth)
    needed = set()
    ev = None
    try:
        ev = make_event_from_dict(copy.deepcopy(d), room.rv)
        needed = set(ev.auth_event_ids())
    except Exception:  # noqa: BLE001
        needed = set()
    case = {
        "room_version": version,
        "event": d,
        "auth_events": [room.dicts[i] for i in needed if i in room.dicts],
    }
    return room, d, case


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("oracle")
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--regressions", default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    print("auth_diff: seed %d, %d cases" % (seed, args.cases), flush=True)
    oracle = subprocess.Popen([args.oracle], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(case):
        oracle.stdin.write(json.dumps(case) + "\n")
        oracle.stdin.flush()
        return json.loads(oracle.stdout.readline())

    disagreements = 0
    accepted = 0
    if args.regressions:
        with open(args.regressions) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                reg = json.loads(line)
                ours = ask(reg["case"])
                if ours["ok"] != reg["synapse"]:
                    disagreements += 1
                    print("REGRESSION %s line %d: synapse %s, agent %s (%s)" % (args.regressions, n, reg["synapse"], ours["ok"], ours.get("why")))
    rng = random.Random(seed)
    loop = asyncio.new_event_loop()
    for i in range(args.cases):
        room, d, case = make_case(rng)
        syn_ok, syn_why = loop.run_until_complete(synapse_verdict(room, d))
        ours = ask(case)
        accepted += syn_ok
        if ours["ok"] != syn_ok:
            disagreements += 1
            if disagreements <= 20:
                print("DISAGREE case %d (room version %s): synapse %s (%s), agent %s (%s)" % (i, room.version, syn_ok, syn_why, ours["ok"], ours.get("why")))
                print("  " + json.dumps({"case": case, "synapse": syn_ok}))
    oracle.stdin.close()
    oracle.wait()
    print("auth_diff: %d cases, %d accepted by Synapse, %d disagreements" % (args.cases, accepted, disagreements))
    sys.exit(1 if disagreements else 0)


if __name__ == "__main__":
    main()
