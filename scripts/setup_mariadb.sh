#!/usr/bin/env bash
# A MariaDB server for the ML Metadata tests (`make test` calls it before pytest): Debian's
# mariadb-server, on 127.0.0.1 only, on its own port and data directory under var/mariadb, with a
# generated CA and server certificate, TLS required of every TCP client
# (require_secure_transport=ON: a plain connection is refused, which the tests check too).
#
# Idempotent: with the server up it prints where things are and returns at once.
#   scripts/setup_mariadb.sh          install if missing, set up, start
#   scripts/setup_mariadb.sh stop     stop the server this script started
# Environment: MARIADB_DIR (default var/mariadb), MARIADB_PORT (default 3307).
#
# What it leaves in $MARIADB_DIR:
#   connection.json   host, port, user, password_file, ca, cert, key, socket (what tests read)
#   password          the test user's generated password (mode 600)
#   ca.pem ca-key.pem server-cert.pem server-key.pem client-cert.pem client-key.pem
#   data/ mariadb.sock mariadbd.pid mariadbd.log my.cnf
# Users: `mlmd` (password; TLS is the server's rule, require_secure_transport) and `mlmd_x509`
# (same password, REQUIRE X509: a client certificate signed by the CA), both with every
# privilege on the databases named `mlmd_*`.
# The administrator is the OS user that ran this script, through the Unix socket only.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="$(realpath -m "${MARIADB_DIR:-var/mariadb}")"
port="${MARIADB_PORT:-3307}"
sock="$dir/mariadb.sock"
pidfile="$dir/mariadbd.pid"
log="$dir/mariadbd.log"
# mariadbd refuses to run as root unless told to: as root it runs as root (a throw-away test
# server owned by whoever runs the tests), otherwise as the current user. That OS user is also
# the server's administrator, through the Unix socket only (unix_socket authentication).
user="$(id -un)"

say() { echo "setup-mariadb: $*" >&2; }
die() { say "error: $*"; exit 1; }

up() { [ -S "$sock" ] && mariadb-admin --no-defaults --socket="$sock" --user="$user" \
         --connect-timeout=2 ping >/dev/null 2>&1; }

summary() {
  say "MariaDB up on 127.0.0.1:$port (TLS required); password file $dir/password," \
      "CA $dir/ca.pem, settings $dir/connection.json"
}

if [ "${1:-}" = stop ]; then
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    pid="$(cat "$pidfile")"
    kill "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    say "stopped mariadbd $pid"
  else
    say "not running"
  fi
  exit 0
fi

# Up, and set up by this version of this script: nothing to do.
if up && [ "$dir/connection.json" -nt "$0" ] && [ -f "$dir/password" ]; then
  summary
  exit 0
fi

# --- the packages ---------------------------------------------------------------------------
if ! command -v mariadbd >/dev/null 2>&1 || ! command -v mariadb >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "mariadb-server is not installed and this user" \
      "cannot install it (no root, no sudo): apt-get install mariadb-server mariadb-client"
    sudo="sudo"
  fi
  say "installing mariadb-server and mariadb-client (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  packages=(mariadb-server mariadb-client)
  $sudo apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null \
    || { $sudo apt-get update -q >/dev/null && \
         $sudo apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null; } \
    || die "apt-get could not install ${packages[*]}"
fi
command -v openssl >/dev/null 2>&1 || die "openssl is missing (apt-get install openssl)"

mkdir -p "$dir"
chmod 700 "$dir"
umask 077

# --- certificates: a CA, the server's (127.0.0.1 and localhost), a client's -------------------
if [ ! -f "$dir/client-cert.pem" ]; then
  say "generating a CA, a server and a client certificate in $dir"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=tfx-pipeline test CA" \
    -keyout "$tmp/ca-key.pem" -out "$tmp/ca.pem" 2>/dev/null
  issue() {  # name, subject, extensions
    openssl req -newkey rsa:2048 -nodes -subj "$2" \
      -keyout "$tmp/$1-key.pem" -out "$tmp/$1.csr" 2>/dev/null
    printf '%s\n' "$3" > "$tmp/$1.ext"
    openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.pem" \
      -CAcreateserial -days 3650 -extfile "$tmp/$1.ext" -out "$tmp/$1-cert.pem" 2>/dev/null
  }
  issue server "/CN=localhost" \
    "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
  issue client "/CN=mlmd_x509" "extendedKeyUsage=clientAuth"
  # The client certificate last: its presence says the set is complete.
  for f in ca.pem ca-key.pem server-key.pem server-cert.pem client-key.pem client-cert.pem; do
    mv "$tmp/$f" "$dir/$f"
  done
fi

# --- the data directory ---------------------------------------------------------------------
if [ ! -d "$dir/data/mysql" ]; then
  say "creating the data directory $dir/data"
  rm -rf "$dir/data"
  mariadb-install-db --no-defaults --datadir="$dir/data" --user="$user" \
    --auth-root-authentication-method=socket --skip-test-db >"$dir/install-db.log" 2>&1 \
    || die "mariadb-install-db failed; see $dir/install-db.log"
fi

cat > "$dir/my.cnf" <<EOF
[mariadbd]
user = $user
datadir = $dir/data
socket = $sock
pid-file = $pidfile
log-error = $log
port = $port
bind-address = 127.0.0.1
skip-name-resolve
skip-log-bin
innodb-buffer-pool-size = 64M
max-connections = 300
ssl-ca = $dir/ca.pem
ssl-cert = $dir/server-cert.pem
ssl-key = $dir/server-key.pem
require-secure-transport = ON
EOF

# --- the server -----------------------------------------------------------------------------
if ! up; then
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port on 127.0.0.1 is taken by another program; set MARIADB_PORT"
  fi
  say "starting mariadbd on 127.0.0.1:$port"
  setsid mariadbd --defaults-file="$dir/my.cnf" </dev/null >>"$log" 2>&1 &
  for _ in $(seq 120); do
    up && break
    kill -0 $! 2>/dev/null || die "mariadbd stopped at start; see $log"
    sleep 0.25
  done
  up || die "mariadbd did not answer within 30 s; see $log"
fi

# --- the test users -------------------------------------------------------------------------
if [ ! -s "$dir/password" ]; then
  openssl rand -hex 16 > "$dir/password.tmp"
  chmod 600 "$dir/password.tmp"
  mv "$dir/password.tmp" "$dir/password"
fi
password="$(cat "$dir/password")"
# The SQL goes through stdin: the password never shows on a command line.
mariadb --no-defaults --socket="$sock" --user="$user" <<EOF
CREATE USER IF NOT EXISTS 'mlmd'@'127.0.0.1' IDENTIFIED BY '$password';
ALTER USER 'mlmd'@'127.0.0.1' IDENTIFIED BY '$password' REQUIRE NONE;
CREATE USER IF NOT EXISTS 'mlmd_x509'@'127.0.0.1' IDENTIFIED BY '$password' REQUIRE X509;
ALTER USER 'mlmd_x509'@'127.0.0.1' IDENTIFIED BY '$password' REQUIRE X509;
GRANT ALL PRIVILEGES ON \`mlmd\\_%\`.* TO 'mlmd'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`mlmd\\_%\`.* TO 'mlmd_x509'@'127.0.0.1';
CREATE DATABASE IF NOT EXISTS mlmd_default;
EOF

cat > "$dir/connection.json.tmp" <<EOF
{
  "host": "127.0.0.1",
  "port": $port,
  "user": "mlmd",
  "x509_user": "mlmd_x509",
  "password_file": "$dir/password",
  "database": "mlmd_default",
  "ca": "$dir/ca.pem",
  "cert": "$dir/client-cert.pem",
  "key": "$dir/client-key.pem",
  "socket": "$sock",
  "admin_user": "$user"
}
EOF
chmod 644 "$dir/connection.json.tmp"
mv "$dir/connection.json.tmp" "$dir/connection.json"
summary
