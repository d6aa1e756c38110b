#!/usr/bin/env bash
# Shared setup for scripts/test.sh and scripts/demo.sh (also runnable on its own).
#
#   scripts/setup.sh                 the virtualenv .venv with floorhost installed (editable)
#   scripts/setup.sh --test          ... plus the test extra (pytest, hypothesis, playwright, ...)
#   scripts/setup.sh --services      ... plus what the tests need on the machine:
#                                    Chromium, poppler's pdftoppm, the Mosquitto binary, a PostgreSQL on 127.0.0.1:5432
#                                    that user postgres reaches over TCP without a password
#
# Sourced (`. scripts/setup.sh`), it only defines the functions below.
# Idempotent: each step checks first and does nothing when already done; one log line per step.
# Installs from Debian's packages need root: as another user it uses sudo, or stops and names the package.
#
# Environment:
#   PYTHON                    the interpreter to build .venv from (default: python3, must be >= 3.11)
#   FLOORHOST_TEST_PG_URL     the PostgreSQL admin URL for the tests
#                             (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres);
#                             when set to anything else, it is only checked, never provisioned
#   FLOORHOST_TEST_MOSQUITTO  the mosquitto binary the tests start (default /usr/sbin/mosquitto)

FH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FH_VENV="$FH_ROOT/.venv"
FH_PG_PORT=5432  # the port the tests' default URL uses and the local Debian cluster must serve
FH_PG_DEFAULT_URL="postgresql+psycopg://postgres@127.0.0.1:$FH_PG_PORT/postgres"
FH_PG_URL="${FLOORHOST_TEST_PG_URL:-$FH_PG_DEFAULT_URL}"
FH_CHROMIUM=/usr/bin/chromium
FH_MOSQUITTO="${FLOORHOST_TEST_MOSQUITTO:-/usr/sbin/mosquitto}"
FH_APT_UPDATED=0

fh_log() { printf '[setup] %s\n' "$*" >&2; }
fh_die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# --- privileges --------------------------------------------------------------------------------

fh_is_root() { [[ "$(id -u)" == 0 ]]; }

fh_can_sudo() { command -v sudo >/dev/null 2>&1; }

# Run a command as root: directly, or through sudo (non-interactive when there is no terminal).
fh_as_root() {
    if fh_is_root; then
        "$@"
    elif fh_can_sudo; then
        if [[ -t 0 ]]; then sudo "$@"; else sudo -n "$@"; fi
    else
        fh_die "this step needs root and sudo is not available: $*"
    fi
}

# Run a command as the postgres OS user (for the server's Unix socket, where Debian uses peer auth).
fh_as_postgres() {
    if [[ "$(id -un)" == postgres ]]; then
        "$@"
    elif fh_is_root; then
        runuser -u postgres -- "$@"
    elif fh_can_sudo; then
        if [[ -t 0 ]]; then sudo -u postgres "$@"; else sudo -n -u postgres "$@"; fi
    else
        fh_die "this step must run as user postgres (or root) and sudo is not available: $*"
    fi
}

# apt-get install PACKAGE... ; `apt-get update` once per run, before the first install.
fh_apt_install() {
    if ! fh_is_root && ! fh_can_sudo; then
        fh_die "missing: $* — install the Debian package(s) '$*' (apt-get install $*) or run this as root"
    fi
    command -v apt-get >/dev/null 2>&1 || fh_die "missing: $* — no apt-get here; install the equivalent of Debian's '$*'"
    local log
    log="$(mktemp -t floorhost-apt.XXXXXX)"
    if [[ "$FH_APT_UPDATED" != 1 ]]; then
        fh_log "apt-get update"
        if ! fh_as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q >"$log" 2>&1; then
            tail -n 30 "$log" >&2
            fh_die "apt-get update failed"
        fi
        FH_APT_UPDATED=1
    fi
    fh_log "apt-get install $*"
    if ! fh_as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q "$@" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        fh_die "apt-get install $* failed (log above)"
    fi
    rm -f "$log"
}

# --- Python virtualenv -------------------------------------------------------------------------

fh_python() {
    local py="${PYTHON:-python3}"
    command -v "$py" >/dev/null 2>&1 || fh_die "no $py on PATH: install Python 3.11 or newer (Debian: apt-get install python3)"
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || fh_die "$py is Python $("$py" -c 'import platform; print(platform.python_version())'); floorhost needs 3.11 or newer"
    printf '%s\n' "$py"
}

# The venv module with ensurepip (Debian's system Python ships them in pythonX.Y-venv).
fh_ensure_venv_module() {
    local py="$1" ver
    if "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then return 0; fi
    ver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    fh_log "$py has no usable venv module: installing python$ver-venv"
    fh_apt_install "python$ver-venv"
    "$py" -c 'import venv, ensurepip' >/dev/null 2>&1 \
        || fh_die "$py still has no venv/ensurepip after installing python$ver-venv"
}

# What the installed environment was made from: packaging files, the Python, the extras.
fh_install_key() {
    local py="$1" f
    {
        for f in setup.cfg setup.py pyproject.toml; do
            if [[ -f "$FH_ROOT/$f" ]]; then echo "== $f"; cat "$FH_ROOT/$f"; fi
        done
        "$py" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
}

# fh_setup_venv [test]: .venv exists, is healthy, and has floorhost (+ the extra) installed.
fh_setup_venv() {
    local extra="${1:-}" py vpy key stamp="$FH_VENV/.floorhost-installed" log="$FH_VENV/.floorhost-pip.log"
    py="$(fh_python)"

    vpy="$FH_VENV/bin/python"
    if [[ -d "$FH_VENV" ]]; then
        # A venv whose base Python went away, or of another minor version, is rebuilt.
        local want have
        want="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
        have="$("$vpy" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)"
        if [[ "$have" != "$want" ]] || ! "$vpy" -m pip --version >/dev/null 2>&1; then
            fh_log "virtualenv .venv is broken or for Python ${have:-?} (want $want): recreating it"
            rm -rf "$FH_VENV"
        fi
    fi
    if [[ ! -d "$FH_VENV" ]]; then
        fh_ensure_venv_module "$py"
        fh_log "creating virtualenv .venv ($("$py" -c 'import platform; print(platform.python_version())'))"
        if ! "$py" -m venv "$FH_VENV"; then
            rm -rf "$FH_VENV"
            fh_die "'$py -m venv .venv' failed"
        fi
    fi

    key="$(fh_install_key "$vpy")"
    if [[ -f "$stamp" ]] && [[ "$(sed -n 1p "$stamp")" == "$key" ]] \
        && { [[ -z "$extra" ]] || grep -qx "extra=$extra" "$stamp"; } \
        && fh_installed_ok "$extra"; then
        fh_log "virtualenv .venv is up to date${extra:+ (with [$extra])}"
        return 0
    fi

    fh_log "installing floorhost into .venv: pip install -e '.${extra:+[$extra]}' (log: .venv/.floorhost-pip.log)"
    : >"$log"
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
    # Playwright's Python package brings its driver; browsers never come from it here (Debian's Chromium is used).
    export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
    if ! "$vpy" -m pip install --upgrade pip >>"$log" 2>&1 \
        || ! (cd "$FH_ROOT" && "$vpy" -m pip install -e ".${extra:+[$extra]}") >>"$log" 2>&1; then
        tail -n 40 "$log" >&2
        rm -f "$stamp"
        fh_die "pip install failed (full log: $log)"
    fi
    fh_installed_ok "$extra" || fh_die "floorhost is installed in .venv but does not import (see $log)"
    if [[ -n "$extra" ]]; then
        printf '%s\nextra=%s\n' "$key" "$extra" >"$stamp"
    else
        printf '%s\n' "$key" >"$stamp"
    fi
}

# The editable install points at this checkout and the console script exists.
fh_installed_ok() {
    local extra="${1:-}" mods="server"
    [[ -x "$FH_VENV/bin/floorhost" ]] || return 1
    [[ "$extra" == test ]] && mods="server, pytest, pytest_timeout, hypothesis, playwright"
    (cd / && "$FH_VENV/bin/python" - "$FH_ROOT" <<EOF
import os, sys
import $mods
root = os.path.realpath(sys.argv[1])
sys.exit(0 if os.path.realpath(server.__file__).startswith(root + os.sep) else 1)
EOF
    ) >/dev/null 2>&1
}

# --- services for the tests --------------------------------------------------------------------

fh_ensure_chromium() {
    if [[ -x "$FH_CHROMIUM" ]]; then
        fh_log "Chromium: $FH_CHROMIUM present"
        return 0
    fi
    fh_apt_install chromium
    [[ -x "$FH_CHROMIUM" ]] || fh_die "installed Debian's chromium but $FH_CHROMIUM is missing"
}

fh_ensure_pdftoppm() {
    # The printing and report tests render PDF pages to PNG with poppler's pdftoppm.
    if command -v pdftoppm >/dev/null 2>&1; then
        fh_log "pdftoppm: present"
        return 0
    fi
    fh_apt_install poppler-utils
    command -v pdftoppm >/dev/null 2>&1 || fh_die "installed Debian's poppler-utils but pdftoppm is missing"
}

fh_ensure_mosquitto() {
    if [[ -x "$FH_MOSQUITTO" ]]; then
        fh_log "Mosquitto: $FH_MOSQUITTO present (the tests start their own brokers)"
        return 0
    fi
    [[ "$FH_MOSQUITTO" == /usr/sbin/mosquitto ]] \
        || fh_die "FLOORHOST_TEST_MOSQUITTO=$FH_MOSQUITTO is not an executable"
    fh_apt_install mosquitto
    [[ -x "$FH_MOSQUITTO" ]] || fh_die "installed Debian's mosquitto but $FH_MOSQUITTO is missing"
}

# Is something accepting TCP connections on host:port?
fh_port_open() {
    (exec 3<>"/dev/tcp/$1/$2") >/dev/null 2>&1
}

# Can the tests' admin URL connect, and may it CREATE DATABASE? Prints the reason when not.
fh_pg_check() {
    "$FH_VENV/bin/python" - "$FH_PG_URL" <<'EOF'
import sys
url = sys.argv[1].replace("postgresql+psycopg://", "postgresql://", 1)
try:
    import psycopg
    with psycopg.connect(url, connect_timeout=5) as conn:
        ok = conn.execute("SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user").fetchone()
        if not (ok and ok[0]):
            print("connected, but the role may not CREATE DATABASE")
            sys.exit(2)
except Exception as exc:  # any failure is reported as one line
    print(" ".join(str(exc).split()) or type(exc).__name__)
    sys.exit(1)
EOF
}

# Debian's clusters (postgresql-common): "VERSION NAME PORT STATUS" lines.
fh_pg_clusters() {
    command -v pg_lsclusters >/dev/null 2>&1 || return 0
    pg_lsclusters -h 2>/dev/null | awk '{print $1, $2, $3, $4}'
}

# Debian's server package: a postgres binary and postgresql-common's cluster tools.
fh_pg_server_installed() {
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null && command -v pg_ctlcluster >/dev/null 2>&1 \
        && command -v pg_createcluster >/dev/null 2>&1
}

fh_pg_wait_ready() {
    local i
    for ((i = 0; i < 60; i++)); do
        if command -v pg_isready >/dev/null 2>&1; then
            pg_isready -q -h 127.0.0.1 -p "$FH_PG_PORT" && return 0
        elif fh_port_open 127.0.0.1 "$FH_PG_PORT"; then
            return 0
        fi
        sleep 1
    done
    return 1
}

# Make host lines for 127.0.0.1/32 and ::1/128 trust in a cluster's pg_hba.conf, then reload it.
fh_pg_trust_localhost() {
    local ver="$1" name="$2" hba
    hba="$(fh_as_postgres psql -X -q -p "$FH_PG_PORT" -Atc 'SHOW hba_file' 2>/dev/null || true)"
    [[ -n "$hba" ]] || hba="/etc/postgresql/$ver/$name/pg_hba.conf"
    fh_as_root test -f "$hba" || fh_die "cannot find pg_hba.conf of cluster $ver/$name"
    fh_log "PostgreSQL: trusting local TCP connections (127.0.0.1/32, ::1/128) in $hba"
    [[ -f "$hba.floorhost-orig" ]] || fh_as_root cp -p "$hba" "$hba.floorhost-orig"
    # Debian's default has "host all all 127.0.0.1/32 scram-sha-256" (and ::1/128): switch their method.
    fh_as_root sed -i -E \
        's#^([[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+(127\.0\.0\.1/32|::1/128)[[:space:]]+)[^[:space:]]+#\1trust#' \
        "$hba"
    # Without such lines (a custom file), put explicit ones first: the first matching line wins.
    if ! fh_as_root grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
        fh_as_root sed -i -e '1i host all postgres 127.0.0.1/32 trust' -e '1i host all postgres ::1/128 trust' "$hba"
    fi
    fh_as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload \
        || fh_die "pg_ctlcluster $ver $name reload failed"
    sleep 1
}

# A PostgreSQL on 127.0.0.1:5432 (FH_PG_PORT) that user postgres reaches without a password and may create databases in.
fh_ensure_postgres() {
    local why
    if why="$(fh_pg_check)"; then
        fh_log "PostgreSQL: ${FH_PG_URL} is ready"
        return 0
    fi
    if [[ "$FH_PG_URL" != "$FH_PG_DEFAULT_URL" ]]; then
        fh_die "PostgreSQL at FLOORHOST_TEST_PG_URL=$FH_PG_URL is not usable: $why"
    fi

    local line ver name status
    if ! fh_port_open 127.0.0.1 "$FH_PG_PORT"; then
        # Nothing listens: install the server if needed, make a cluster if there is none, start it.
        if [[ -z "$(fh_pg_clusters)" ]]; then
            if ! fh_pg_server_installed; then
                fh_apt_install postgresql
            fi
            if [[ -z "$(fh_pg_clusters)" ]]; then
                ver="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)"
                fh_log "PostgreSQL: creating cluster $ver/main"
                fh_as_root pg_createcluster "$ver" main >/dev/null || fh_die "pg_createcluster $ver main failed"
            fi
        fi
        line="$(fh_pg_clusters | awk -v port="$FH_PG_PORT" '$3 == port' | head -n 1)"
        [[ -n "$line" ]] || fh_die "no PostgreSQL cluster is set up for port $FH_PG_PORT (pg_lsclusters: $(fh_pg_clusters | tr '\n' ';'))"
        read -r ver name _ status <<<"$line"
        if [[ "$status" != online* ]]; then
            fh_log "PostgreSQL: starting cluster $ver/$name"
            fh_as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start \
                || fh_die "could not start PostgreSQL cluster $ver/$name (see /var/log/postgresql/postgresql-$ver-$name.log)"
        fi
        fh_pg_wait_ready || fh_die "PostgreSQL cluster $ver/$name did not become ready on 127.0.0.1:$FH_PG_PORT within 60 s"
        why="$(fh_pg_check)" && { fh_log "PostgreSQL: ${FH_PG_URL} is ready"; return 0; }
    else
        fh_pg_wait_ready || true
        why="$(fh_pg_check)" && { fh_log "PostgreSQL: ${FH_PG_URL} is ready"; return 0; }
    fi

    # Something listens but refuses us: if it is a local Debian cluster, let user postgres in over TCP.
    line="$(fh_pg_clusters | awk -v port="$FH_PG_PORT" '$3 == port && $4 ~ /^online/' | head -n 1)"
    if [[ -n "$line" ]] && [[ "$why" == *password* || "$why" == *pg_hba.conf* || "$why" == *authentication* ]]; then
        read -r ver name _ status <<<"$line"
        fh_pg_trust_localhost "$ver" "$name"
        why="$(fh_pg_check)" && { fh_log "PostgreSQL: ${FH_PG_URL} is ready"; return 0; }
    fi
    fh_die "PostgreSQL on 127.0.0.1:$FH_PG_PORT is not usable by the tests ($why): it must let user postgres connect over TCP without a password and create databases"
}

# --- command line ------------------------------------------------------------------------------

fh_setup_main() {
    local extra="" services=0 arg
    for arg in "$@"; do
        case "$arg" in
            --test) extra="test" ;;
            --services) extra="test"; services=1 ;;
            -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; return 0 ;;
            *) fh_die "unknown option: $arg (try --help)" ;;
        esac
    done
    fh_setup_venv "$extra"
    if [[ "$services" == 1 ]]; then
        fh_ensure_chromium
        fh_ensure_pdftoppm
        fh_ensure_mosquitto
        fh_ensure_postgres
    fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    fh_setup_main "$@"
fi
