# Sourced by packaging/first-run.sh and tests/run.sh (not run on its own).
#
#   install_missing NAME     NAME: an associative array `[probe]=package`
#
# A probe is a command, `file:` and a path, or `python:` and a module of
# python3, whose absence means the package is missing; the missing packages are installed with apt-get (with
# sudo unless root), after one `apt-get update`.
install_missing() {
    local -n deps=$1
    local missing=() probe
    for probe in "${!deps[@]}"; do
        case "$probe" in
            file:*) [ -e "${probe#file:}" ] || missing+=("${deps[$probe]}") ;;
            python:*) python3 -c "import ${probe#python:}" >/dev/null 2>&1 || missing+=("${deps[$probe]}") ;;
            *) command -v "$probe" >/dev/null 2>&1 || missing+=("${deps[$probe]}") ;;
        esac
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    echo "== installing ${missing[*]}" >&2
    local sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
}
