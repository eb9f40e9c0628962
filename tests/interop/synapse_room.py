#!/usr/bin/env python3
"""Builds a room history on a real Synapse and reads it back as a client
would with a filter of {"event_format": "federation"}.

    synapse_room.py URL ALICE_TOKEN_FILE BOB_TOKEN_FILE ROOM_VERSION OUT_DIR

Alice creates a room of ROOM_VERSION, invites Bob, Bob joins, Alice raises
Bob to 50, sets a topic, both send messages. Writes OUT_DIR/sync.json
(Alice's initial /sync in federation format), OUT_DIR/history.json (the
room's /messages from its start, federation format, as {room_id, events})
and OUT_DIR/keys.json (the server's /_matrix/key/v2/server answer); prints
the room ID.
"""

import json
import sys
import urllib.parse
import urllib.request


def main():
    url, alice_file, bob_file, version, out = sys.argv[1:6]
    tokens = {}
    for who, f in (("alice", alice_file), ("bob", bob_file)):
        with open(f) as fh:
            tokens[who] = fh.read().strip()
    txn = [0]

    def call(who, method, path, body=None):
        req = urllib.request.Request(url + path, method=method)
        if who:
            req.add_header("Authorization", "Bearer " + tokens[who])
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, data, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def send(who, room, ty, content):
        txn[0] += 1
        q = urllib.parse.quote
        return call(who, "PUT", "/_matrix/client/v3/rooms/%s/send/%s/t%d" % (q(room), ty, txn[0]), content)

    bob = call("bob", "GET", "/_matrix/client/v3/account/whoami")["user_id"]
    room = call("alice", "POST", "/_matrix/client/v3/createRoom",
                {"preset": "private_chat", "room_version": version, "name": "verified view"})["room_id"]
    q = urllib.parse.quote(room)
    call("alice", "POST", "/_matrix/client/v3/rooms/%s/invite" % q, {"user_id": bob})
    call("bob", "POST", "/_matrix/client/v3/rooms/%s/join" % q, {})
    pl = call("alice", "GET", "/_matrix/client/v3/rooms/%s/state/m.room.power_levels/" % q)
    pl.setdefault("users", {})[bob] = 50
    call("alice", "PUT", "/_matrix/client/v3/rooms/%s/state/m.room.power_levels/" % q, pl)
    call("alice", "PUT", "/_matrix/client/v3/rooms/%s/state/m.room.topic/" % q, {"topic": "checked"})
    for i in range(3):
        send("alice", room, "m.room.message", {"msgtype": "m.text", "body": "alice %d" % i})
    for i in range(2):
        send("bob", room, "m.room.message", {"msgtype": "m.text", "body": "bob %d" % i})
    # Only this room: Synapse caches an initial /sync per filter for minutes.
    flt = json.dumps({"event_format": "federation", "room": {"rooms": [room], "timeline": {"limit": 200}}})
    sync = call("alice", "GET", "/_matrix/client/v3/sync?filter=" + urllib.parse.quote(flt))
    with open(out + "/sync.json", "w") as f:
        json.dump(sync, f)
    # The whole history from the start, as a client pages it with /messages
    # (a v12 room's /sync timeline leaves out its create event).
    msgs = call("alice", "GET", "/_matrix/client/v3/rooms/%s/messages?dir=f&limit=1000&filter=%s"
                % (q, urllib.parse.quote(json.dumps({"event_format": "federation"}))))
    with open(out + "/history.json", "w") as f:
        json.dump({"room_id": room, "events": msgs["chunk"]}, f)
    keys = call(None, "GET", "/_matrix/key/v2/server")
    with open(out + "/keys.json", "w") as f:
        json.dump(keys, f)
    print(room)


if __name__ == "__main__":
    main()
