#!/usr/bin/env bash
# Installs the third-party WebSocket clients that tests/real_clients.rs runs against wson,
# and the tools other tests observe wson with:
#   - Debian's chromium (headless browser)          -> /usr/bin/chromium
#   - Python websockets, websocket-client and autobahn (WAMP) -> tests/clients/.venv
#   - Crossbar.io, the reference WAMP router (tests/wamp_parity.rs) -> tests/clients/.crossbar-venv
#   - Node ws, autobahn, autobahn-browser and wampy  -> tests/clients/node_modules
#   - iproute2's ss (tests/sockets.rs reads the accept queue lengths) -> ss on PATH
#   - php-cli (tests/readme.rs runs README's PHP, tests/demo.rs the demo, tests/php_client.rs
#     the kit's clients/php/Wson.php) -> php on PATH
#   - redis-server (tests/cluster.rs joins nodes through a Redis of its own) -> redis-server
#   - openssl (tests/cluster.rs makes a certificate for a Redis over TLS) -> openssl on PATH
#   - nginx-light (tests/kit.rs runs examples/nginx/wson.conf in front of wson) -> nginx
# Versions are pinned in tests/clients/requirements.txt, tests/clients/requirements-crossbar.txt
# and tests/clients/package-lock.json.
#
# Idempotent and quick when everything is in place: each step checks first and installs only
# what is missing or whose pin file changed (a hash of it is kept beside the install).
# Runs unattended as root on a fresh machine; needs apt, python3 and npm.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
clients="$here/clients"
venv="$clients/.venv"
export DEBIAN_FRONTEND=noninteractive

log() { printf 'install-tools: %s\n' "$*" >&2; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

apt_updated=no
apt_install() {
    if [ "$apt_updated" = no ]; then
        apt-get update -q
        apt_updated=yes
    fi
    apt-get install -y -q --no-install-recommends "$@"
}

# --- Chromium ---------------------------------------------------------------------------------
if [ -x /usr/bin/chromium ]; then
    log "chromium: present"
else
    log "chromium: installing with apt-get"
    apt_install chromium
fi

# --- ss and php ------------------------------------------------------------------------------
if command -v ss >/dev/null; then
    log "ss: present"
else
    log "ss: installing iproute2 with apt-get"
    apt_install iproute2
fi
if command -v php >/dev/null; then
    log "php: present"
else
    log "php: installing php-cli with apt-get"
    apt_install php-cli
fi
if command -v redis-server >/dev/null; then
    log "redis-server: present"
else
    log "redis-server: installing with apt-get"
    apt_install redis-server
fi
if command -v openssl >/dev/null; then
    log "openssl: present"
else
    log "openssl: installing with apt-get (tests/cluster.rs makes a Redis TLS certificate)"
    apt_install openssl
fi
if command -v nginx >/dev/null; then
    log "nginx: present"
else
    log "nginx: installing nginx-light with apt-get (tests/kit.rs runs the nginx example)"
    apt_install nginx-light
fi

# --- Python clients and Crossbar.io -------------------------------------------------------------
# A venv from a pin file, rebuilt when the file changes. Crossbar.io gets its own: it pins many
# dependencies (Twisted, web3, ...) that the clients have no business sharing.
python_venv() {
    local what="$1" venv="$2" pins="$3"
    local want have python
    want="$(sha "$pins")"
    have="$(cat "$venv/requirements.sha256" 2>/dev/null || true)"
    if [ -x "$venv/bin/python" ] && [ "$want" = "$have" ]; then
        log "$what: present"
        return
    fi
    log "$what: installing into $venv"
    python="${PYTHON:-python3}"
    rm -rf "$venv"
    if ! "$python" -m venv "$venv" 2>/dev/null; then
        # Debian splits venv support (ensurepip) into its own package.
        rm -rf "$venv"
        apt_install python3-venv
        python=/usr/bin/python3
        "$python" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-input -r "$pins"
    printf '%s\n' "$want" >"$venv/requirements.sha256"
}
python_venv "python clients" "$venv" "$clients/requirements.txt"
python_venv "crossbar" "$clients/.crossbar-venv" "$clients/requirements-crossbar.txt"

# --- Node client ------------------------------------------------------------------------------
want="$(sha "$clients/package-lock.json")"
have="$(cat "$clients/node_modules/.package-lock.sha256" 2>/dev/null || true)"
if [ -d "$clients/node_modules" ] && [ "$want" = "$have" ]; then
    log "node clients: present"
else
    if ! command -v npm >/dev/null; then
        log "node clients: npm missing, installing nodejs and npm with apt-get"
        apt_install nodejs npm
    fi
    log "node clients: npm ci in $clients"
    (cd "$clients" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$want" >"$clients/node_modules/.package-lock.sha256"
fi

log "all real clients installed"
