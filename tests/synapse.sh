#!/usr/bin/env bash
# A real Synapse homeserver on 127.0.0.1 with SQLite, for integration tests.
#
#   tests/synapse.sh install          venv + pinned matrix-synapse (PyPI); a quick
#                                     no-op when that exact install is there
#   tests/synapse.sh start DIR        config, database, media and log in DIR;
#                                     prints the base URL and writes it to DIR/url
#   tests/synapse.sh user DIR NAME    registers @NAME:localhost (random password,
#                                     kept in DIR/NAME.password), logs in, writes
#                                     the access token to DIR/NAME.token (0600)
#                                     and prints the user id
#   tests/synapse.sh stop DIR         TERM, then KILL; never fails if stopped
#
# DIR after `start`: homeserver.yaml (rewritten at each start), homeserver.db,
# homeserver.log (appended to), homeserver.pid, url, media_store/, and, made
# once and kept across restarts, localhost.signing.key and
# registration_shared_secret. A second `start` after `stop` reuses the
# database, so users, tokens and account data survive it (on a new port).
#
# Progress and errors go to stderr; stdout carries only the result (the URL
# of `start`, the user id of `user`), so a test can capture it.
#
# Environment:
#   CRYPTOID_SYNAPSE_VENV     the venv (a cache, shared by every DIR);
#                             default $HOME/.cache/cryptoid-tests/synapse-venv
#   CRYPTOID_SYNAPSE_PYTHON   the interpreter that makes the venv (>= 3.10);
#                             default python3
#   CRYPTOID_SYNAPSE_TIMEOUT  seconds `start` waits for the server; default 60
#
# Only `install` uses the network (PyPI, through pip). The server listens on
# 127.0.0.1 only, has no federation listener and trusts no key server, so it
# never dials out on its own.
set -euo pipefail

SYNAPSE_VERSION=1.163.2
VENV=${CRYPTOID_SYNAPSE_VENV:-${HOME:?HOME is not set}/.cache/cryptoid-tests/synapse-venv}
START_TIMEOUT=${CRYPTOID_SYNAPSE_TIMEOUT:-60}
PY=$VENV/bin/python
# Written last by `install`: its content is the constraints it installed, so
# a change of any pin below makes the next `install` run again.
STAMP=$VENV/.cryptoid-synapse-installed

say() { printf 'synapse.sh: %s\n' "$*" >&2; }
die() { printf 'synapse.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
    cat >&2 <<'EOF'
usage: tests/synapse.sh install
       tests/synapse.sh start DIR
       tests/synapse.sh user DIR NAME
       tests/synapse.sh stop DIR
EOF
    exit 2
}

# Synapse's Python dependencies are only lower bounds on PyPI, so these pins
# (a `pip freeze` of a working install under CPython 3.11) keep a new release
# of Twisted or another dependency from changing the server under the tests.
# Bump SYNAPSE_VERSION and these together.
constraints() {
    cat <<EOF
matrix-synapse==$SYNAPSE_VERSION
annotated-types==0.8.0
attrs==26.1.0
Automat==25.4.16
bcrypt==5.0.0
bleach==6.4.0
canonicaljson==2.0.0
certifi==2026.10.19.post1
cffi==2.1.1
charset-normalizer==3.5.3
constantly==23.10.4
cryptography==50.0.2
hyperlink==21.0.0
idna==3.20
ijson==3.6.0
immutabledict==4.3.1
Incremental==24.11.0
Jinja2==3.1.6
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
MarkupSafe==3.0.4
matrix-common==1.3.0
msgpack==1.2.4
multipart==2.0.1
netaddr==1.3.0
packaging==26.4
phonenumbers==9.0.43
pillow==13.0.0
prometheus_client==0.26.0
pyasn1==0.6.5
pyasn1_modules==0.4.2
pycparser==3.12
pydantic==2.14.4
pydantic_core==2.50.5
pymacaroons==0.13.0
PyNaCl==1.6.2
pyOpenSSL==26.4.0
pyparsing==3.3.3
pyrsistent==0.20.0
python-multipart==0.0.34
PyYAML==6.0.4
referencing==0.37.0
requests==2.34.2
rpds-py==2026.9.1
semantic-version==2.10.0
service-identity==26.1.0
setuptools-rust==1.13.0
signedjson==1.1.4
six==1.17.0
sortedcontainers==2.4.0
treq==26.7.0
Twisted==26.10.0
typing-inspection==0.4.5
typing_extensions==4.16.0
unpaddedbase64==2.1.0
urllib3==2.8.0
webencodings==0.6.1
zope.interface==8.7
EOF
}

installed() {
    [[ -x $PY && -f $STAMP ]] && [[ "$(cat "$STAMP")" == "$(constraints)" ]] \
        && "$PY" -c 'import sys' 2>/dev/null
}

cmd_install() {
    local base=${CRYPTOID_SYNAPSE_PYTHON:-python3}
    mkdir -p "$(dirname "$VENV")"
    # Two test processes may run `install` at once: the second waits here and
    # then finds the work done.
    if command -v flock >/dev/null; then
        exec 9>"$VENV.lock"
        flock 9
    fi
    if installed; then
        say "matrix-synapse $SYNAPSE_VERSION already installed in $VENV"
        return 0
    fi
    local t0=$SECONDS
    if [[ -e $VENV && ! -x $PY ]] || { [[ -x $PY ]] && ! "$PY" -c 'import sys' 2>/dev/null; }; then
        # A venv whose interpreter is gone (a removed pyenv version) or a
        # half-made one: start over, but never remove what is not a venv.
        [[ -f $VENV/pyvenv.cfg ]] || die "$VENV exists and is not a venv; remove it or set CRYPTOID_SYNAPSE_VENV"
        say "removing broken venv $VENV"
        rm -rf -- "$VENV"
    fi
    if [[ ! -x $PY ]]; then
        command -v "$base" >/dev/null || die "no $base to make the venv with (set CRYPTOID_SYNAPSE_PYTHON)"
        "$base" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
            || die "$base is $("$base" --version 2>&1); matrix-synapse $SYNAPSE_VERSION needs Python >= 3.10"
        say "creating venv $VENV with $("$base" --version 2>&1)"
        "$base" -m venv "$VENV" >&2 \
            || die "could not create the venv with $base (on Debian's python3: apt-get install python3-venv)"
    fi
    local cfile
    cfile=$(mktemp)
    constraints >"$cfile"
    say "installing matrix-synapse $SYNAPSE_VERSION and its pinned dependencies from PyPI"
    # --prefer-binary: a wheel over a build wherever PyPI has one (for CPython
    # 3.11 on x86_64 every pin has one, so nothing compiles).
    if ! "$PY" -m pip install --disable-pip-version-check --no-input --prefer-binary \
            --progress-bar off -c "$cfile" "matrix-synapse==$SYNAPSE_VERSION" >&2; then
        rm -f "$cfile"
        die "pip install of matrix-synapse $SYNAPSE_VERSION failed (see above)"
    fi
    "$PY" -c 'import synapse.app.homeserver' || { rm -f "$cfile"; die "synapse installed but does not import"; }
    mv "$cfile" "$STAMP"
    say "matrix-synapse $SYNAPSE_VERSION installed in $VENV in $((SECONDS - t0)) s"
}

need_installed() {
    installed || die "matrix-synapse $SYNAPSE_VERSION is not installed in $VENV: run tests/synapse.sh install"
}

# DIR as an absolute path (created for `start`), so the config and pid file
# stay right whatever the caller's working directory.
abs_dir() {
    [[ -n ${1:-} ]] || usage
    if [[ ${2:-} == create ]]; then mkdir -p -- "$1"; fi
    [[ -d $1 ]] || die "$1 is not a directory"
    (cd -- "$1" && pwd -P)
}

# Whether PID is a live process; a zombie (exited, not yet reaped by a parent
# that may never reap it) counts as gone.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    if [[ -r /proc/$1/stat ]]; then
        local stat
        stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
        stat=${stat##*) }
        [[ ${stat%% *} != Z ]] || return 1
    fi
    return 0
}

# The pid in DIR/homeserver.pid if that process is alive and is Synapse (a pid
# file that survived a reboot may name some other process by now).
running_pid() {
    local dir=$1 pid
    [[ -f $dir/homeserver.pid ]] || return 1
    pid=$(cat "$dir/homeserver.pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    if [[ -r /proc/$pid/cmdline ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'synapse\.app\.homeserver' || return 1
    fi
    echo "$pid"
}

log_tail() {
    local dir=$1
    printf -- '----- last 40 lines of %s -----\n' "$dir/homeserver.log" >&2
    tail -n 40 "$dir/homeserver.log" >&2 2>/dev/null || true
    printf -- '-----\n' >&2
}

# Poll until GET URL/_matrix/client/versions answers 200 (exit 0), the
# process PID exits (1) or the timeout passes (2). Proxies are bypassed: an
# http_proxy in the environment must not take 127.0.0.1 traffic.
wait_ready() {
    "$PY" - "$1" "$2" "$3" <<'PYEOF'
import os, sys, time, urllib.request
url, pid, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
        # Synapse is this script's child, unreaped while we wait: exited
        # shows as a zombie, not as gone.
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                sys.exit(1)
    except ProcessLookupError:
        sys.exit(1)
    except FileNotFoundError:
        pass  # no /proc (not Linux): kill alone decides
    try:
        with opener.open(url + "/_matrix/client/versions", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(2)
PYEOF
}

write_config() {
    local dir=$1 port=$2
    cat >"$dir/homeserver.yaml" <<EOF
# Written by tests/synapse.sh start; rewritten (with a new port) at each start.
server_name: "localhost"
public_baseurl: "http://127.0.0.1:$port/"
report_stats: false

listeners:
  # The client-server API and the server's own signing keys
  # (/_matrix/key/v2/server): no federation listener, no TLS, loopback only.
  - port: $port
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client, keys]
        compress: false

database:
  name: sqlite3
  args:
    database: "$dir/homeserver.db"

media_store_path: "$dir/media_store"
signing_key_path: "$dir/localhost.signing.key"
# Read from a file made once per DIR, so a restart keeps it. Synapse also
# derives its macaroon key from it when macaroon_secret_key is unset.
registration_shared_secret_path: "$dir/registration_shared_secret"
enable_registration: false
# Never ask matrix.org (the default) for other servers' keys.
trusted_key_servers: []
# Cheapest bcrypt cost: registration and every login hash a password.
bcrypt_rounds: 4

# Rate limits out of the way of what the tests do: register, log in, and
# write account data in bursts.
rc_message:        {per_second: 10000, burst_count: 100000}
rc_registration:   {per_second: 10000, burst_count: 100000}
rc_login:
  address:         {per_second: 10000, burst_count: 100000}
  account:         {per_second: 10000, burst_count: 100000}
  failed_attempts: {per_second: 10000, burst_count: 100000}

# No log_config: Synapse then logs at INFO to stderr, which start sends to
# homeserver.log together with anything printed before logging is set up.
EOF
}

cmd_start() {
    need_installed
    local dir pid port attempt status
    dir=$(abs_dir "${1:-}" create)
    # DIR goes into the YAML inside double quotes.
    [[ $dir != *[\"\\]* && $dir != *$'\n'* ]] || die "DIR must not contain a quote, backslash or newline: $dir"
    if pid=$(running_pid "$dir"); then
        if [[ -f $dir/url ]] && wait_ready "$(cat "$dir/url")" "$pid" 2; then
            say "already running in $dir (pid $pid)"
            cat "$dir/url"
            return 0
        fi
        die "a Synapse (pid $pid) is running in $dir but does not answer; run tests/synapse.sh stop $dir"
    fi
    rm -f "$dir/url" "$dir/homeserver.pid"
    mkdir -p "$dir/media_store"
    if [[ ! -s $dir/registration_shared_secret ]]; then
        (umask 077 && "$PY" -c 'import secrets; print(secrets.token_hex(32), end="")' \
            >"$dir/registration_shared_secret")
    fi
    local t0=$SECONDS
    # The port is free when chosen but could be taken before Synapse binds
    # it: a start that fails with "Address already in use" tries a new port.
    for attempt in 1 2 3; do
        port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        write_config "$dir" "$port"
        if [[ ! -s $dir/localhost.signing.key ]]; then
            # Makes the signing key only (the config exists, so nothing else).
            "$PY" -m synapse.app.homeserver --config-path "$dir/homeserver.yaml" \
                --generate-keys >>"$dir/homeserver.log" 2>&1 \
                || { log_tail "$dir"; die "could not generate the signing key"; }
        fi
        printf '\n===== synapse.sh start %s, port %s =====\n' "$(date -u +%FT%TZ)" "$port" \
            >>"$dir/homeserver.log"
        # Every fd redirected: a caller reading this script's output through a
        # pipe must not wait for Synapse to exit.
        "$PY" -m synapse.app.homeserver --config-path "$dir/homeserver.yaml" \
            </dev/null >>"$dir/homeserver.log" 2>&1 &
        pid=$!
        echo "$pid" >"$dir/homeserver.pid"
        say "started Synapse $SYNAPSE_VERSION (pid $pid) on 127.0.0.1:$port, waiting for it to answer"
        status=0
        wait_ready "http://127.0.0.1:$port" "$pid" "$START_TIMEOUT" || status=$?
        case $status in
            0)
                echo "http://127.0.0.1:$port" >"$dir/url"
                say "Synapse ready at http://127.0.0.1:$port after $((SECONDS - t0)) s"
                echo "http://127.0.0.1:$port"
                return 0
                ;;
            1)
                wait "$pid" 2>/dev/null || true
                rm -f "$dir/homeserver.pid"
                if [[ $attempt -lt 3 ]] && tail -n 30 "$dir/homeserver.log" | grep -q 'Address already in use'; then
                    say "port $port was taken meanwhile; trying another"
                    continue
                fi
                log_tail "$dir"
                die "Synapse exited during startup (log: $dir/homeserver.log)"
                ;;
            *)
                kill -KILL "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
                rm -f "$dir/homeserver.pid"
                log_tail "$dir"
                die "Synapse did not answer on http://127.0.0.1:$port within $START_TIMEOUT s (log: $dir/homeserver.log)"
                ;;
        esac
    done
}

cmd_user() {
    need_installed
    local dir name
    dir=$(abs_dir "${1:-}")
    name=${2:-}
    [[ -n $name ]] || usage
    # Synapse lowercases the localpart; insist on the canonical form so the
    # file names and the printed id match what the server knows.
    [[ $name =~ ^[a-z0-9._=+-]+$ ]] || die "user name '$name' must match [a-z0-9._=+-]+"
    [[ -f $dir/url ]] || die "no $dir/url: run tests/synapse.sh start $dir first"
    running_pid "$dir" >/dev/null || die "Synapse is not running in $dir: run tests/synapse.sh start $dir"
    (umask 077 && "$PY" - "$(cat "$dir/url")" "$dir" "$name" <<'PYEOF'
import hashlib, hmac, json, os, secrets, sys, urllib.error, urllib.request

url, d, name = sys.argv[1:4]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"error": raw.decode(errors="replace")}

def die(msg):
    print("synapse.sh: error: " + msg, file=sys.stderr)
    sys.exit(1)

secret = open(os.path.join(d, "registration_shared_secret")).read().strip()
pw_file = os.path.join(d, name + ".password")

# The password is kept so that a second call for the same user logs in
# again instead of failing on "User ID already taken".
if os.path.exists(pw_file):
    password = open(pw_file).read().strip()
else:
    password = secrets.token_urlsafe(24)
    status, nonce = call("GET", "/_synapse/admin/v1/register")
    if status != 200:
        die("GET /_synapse/admin/v1/register: %s %s" % (status, nonce))
    nonce = nonce["nonce"]
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([nonce.encode(), name.encode(), password.encode(), b"notadmin"]))
    status, body = call("POST", "/_synapse/admin/v1/register", {
        "nonce": nonce, "username": name, "password": password,
        "admin": False, "mac": mac.hexdigest(),
    })
    if status != 200:
        if body.get("errcode") == "M_USER_IN_USE":
            die("@%s:localhost exists but %s is gone; use a new DIR or name" % (name, pw_file))
        die("registering @%s:localhost: %s %s" % (name, status, body))
    with open(pw_file, "w") as f:
        f.write(password + "\n")

status, body = call("POST", "/_matrix/client/v3/login", {
    "type": "m.login.password",
    "identifier": {"type": "m.id.user", "user": name},
    "password": password,
    "initial_device_display_name": "synapse.sh",
})
if status != 200:
    die("logging in as @%s:localhost: %s %s" % (name, status, body))
token_file = os.path.join(d, name + ".token")
tmp = token_file + ".tmp"
with open(tmp, "w") as f:
    f.write(body["access_token"] + "\n")
os.chmod(tmp, 0o600)
os.replace(tmp, token_file)
print(body["user_id"])
PYEOF
    )
}

cmd_stop() {
    local dir pid i
    # A DIR that does not exist has nothing running in it.
    [[ -n ${1:-} ]] || usage
    [[ -d $1 ]] || { say "$1 does not exist; nothing to stop"; return 0; }
    dir=$(abs_dir "$1")
    if ! pid=$(running_pid "$dir"); then
        rm -f "$dir/homeserver.pid" "$dir/url"
        say "no Synapse running in $dir"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        say "Synapse (pid $pid) still running 5 s after TERM; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 20; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
    fi
    rm -f "$dir/homeserver.pid" "$dir/url"
    say "stopped Synapse (pid $pid) in $dir"
}

case ${1:-} in
    install) [[ $# -eq 1 ]] || usage; cmd_install ;;
    start) [[ $# -eq 2 ]] || usage; cmd_start "$2" ;;
    user) [[ $# -eq 3 ]] || usage; cmd_user "$2" "$3" ;;
    stop) [[ $# -eq 2 ]] || usage; cmd_stop "$2" ;;
    *) usage ;;
esac
