"""A quick, bounded check that a MySQL/MariaDB server will take ML Metadata's connection.

ML Metadata's MySQL client (MariaDB Connector/C, built into ``ml_metadata``) is a poor judge of
a failed connection: every failure, a wrong password, a closed port or a refused plain
connection, comes back as ``mysql_real_connect failed: errno: , error: `` (measured with MLMD
1.16), after 10 s for a host that takes the connection and says nothing (measured). So
before a store is opened the server is asked here, with the standard library, in a few seconds
at most: the TCP connection, the server's greeting, TLS (the certificate checked against the CA,
host name included), the login with ``mysql_native_password`` (the only method MLMD's client
speaks) and the database. Each failure is one ``ProbeError`` line a person can act on; the
password is never part of it (only a scramble of it crosses the wire, as MLMD's client sends).

Why the project checks the server's certificate itself: MLMD 1.16's client cannot. With
``verify_server_cert`` it calls ``X509_check_host(cert, host, 0, ...)``, and its BoringSSL reads
the length 0 as an empty name, which no certificate matches (measured under gdb: the call
returns 0 for a certificate naming the host, 1 when given the length), so every connection
fails; without it, the client checks nothing, not even the CA. See
``components.metadata.store.connection_config``.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import struct
from dataclasses import dataclass

__all__ = ["ProbeError", "ServerHello", "probe_mysql"]

# Capability flags of the client/server protocol (MySQL's include/mysql_com.h).
_LONG_PASSWORD = 0x1
_LONG_FLAG = 0x4
_PROTOCOL_41 = 0x200
_SSL = 0x800
_TRANSACTIONS = 0x2000
_SECURE_CONNECTION = 0x8000
_PLUGIN_AUTH = 0x80000
_CLIENT = (_LONG_PASSWORD | _LONG_FLAG | _PROTOCOL_41 | _TRANSACTIONS | _SECURE_CONNECTION
           | _PLUGIN_AUTH)
_UTF8 = 33
_MAX_PACKET = 1 << 24
_NATIVE = "mysql_native_password"

# Server errors the messages below explain (MySQL's and MariaDB's error numbers).
_ACCESS_DENIED = 1045
_DB_ACCESS_DENIED = 1044
_UNKNOWN_DB = 1049
_SECURE_TRANSPORT_REQUIRED = 3159


class ProbeError(Exception):
    """The server cannot take the connection; the message says why, in one line."""


@dataclass(frozen=True)
class ServerHello:
    """What the server said when it took the connection."""

    version: str
    tls: bool  # the connection was encrypted


@dataclass
class _Target:
    host: str
    port: int
    socket_path: str
    user: str
    password: str
    database: str


def probe_mysql(host: str, port: int, user: str, password: str, database: str, *,
                socket_path: str = "", tls: ssl.SSLContext | None = None,
                timeout: float = 5.0, database_may_be_missing: bool = False) -> ServerHello:
    """Connects, logs in and selects ``database`` as ML Metadata's client would, then quits.

    Args:
        tls: None for a plain connection; otherwise the context to encrypt with (its checks:
            ``tls_context``). TLS is then required: a server that does not offer it is refused.
        timeout: the bound, in seconds, of each step (connection, greeting, TLS, login).
        database_may_be_missing: a missing database is no error (the caller creates it).

    Raises:
        ProbeError: one line: what failed, and what it usually means.
    """
    target = _Target(host, port, socket_path, user, password, database)
    where = socket_path or f"{host}:{port}"
    try:
        hello = _login(target, tls, timeout, database_may_be_missing)
    except _Refused as e:
        if tls is None and e.code == _ACCESS_DENIED and e.server_offers_tls:
            # MariaDB answers a plain connection under require_secure_transport as a wrong
            # password would: ask again over TLS (no certificate check: this only tells the
            # two apart) before blaming the password.
            try:
                _login(target, _unverified_context(), timeout, database_may_be_missing)
            except (_Refused, ProbeError, OSError):
                pass
            else:
                raise ProbeError(_PLAIN_REFUSED) from None
        raise ProbeError(e.explain(target)) from None
    except TimeoutError:
        raise ProbeError(f"no answer from {where} within {timeout:g} s (the host is down, or "
                         "a firewall drops the packets)") from None
    except ConnectionRefusedError:
        raise ProbeError(f"nothing listens on {where} (connection refused): is the server "
                         "running, and is the port right?") from None
    except socket.gaierror as e:
        raise ProbeError(f"unknown host {host!r} ({e.strerror})") from None
    except ssl.SSLCertVerificationError as e:
        raise ProbeError(f"TLS: the server's certificate was refused: {e.verify_message} "
                         "(metadata.tls.ca must be the CA that signed it, for this host name)"
                         ) from None
    except ssl.SSLError as e:
        raise ProbeError(f"TLS handshake with {where} failed: {e.reason or e}") from None
    except OSError as e:
        raise ProbeError(f"cannot connect to {where}: {e.strerror or e}") from None
    return hello


_PLAIN_REFUSED = ("the server refuses plain connections (require_secure_transport): set "
                  "metadata.tls (at least its ca, to check the server's certificate)")


def tls_context(*, ca: str = "", capath: str = "", cert: str = "", key: str = "",
                cipher: str = "", verify_server_cert: bool = True) -> ssl.SSLContext:
    """The TLS context of a probe: the server's certificate checked against ``ca``/``capath``
    (the system's CAs when both are empty), host name included, when ``verify_server_cert``;
    the client certificate ``cert`` (with ``key``) presented when given.

    Raises:
        ProbeError: a file cannot be read or is not what it should be.
    """
    if verify_server_cert and not (ca or capath):
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    elif verify_server_cert:
        # Only the given CA (the system's would take ~15 ms to load, at every open).
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # checks the chain and the host name
        try:
            context.load_verify_locations(cafile=ca or None, capath=capath or None)
        except (OSError, ssl.SSLError) as e:
            raise ProbeError(f"metadata.tls.ca: cannot use {ca or capath}: "
                             f"{getattr(e, 'strerror', None) or e}") from None
    else:
        context = _unverified_context()
    if cert:
        try:
            context.load_cert_chain(cert, key or None)
        except (OSError, ssl.SSLError) as e:
            raise ProbeError(f"metadata.tls.cert/key: cannot use {cert} and {key or cert}: "
                             f"{getattr(e, 'strerror', None) or e}") from None
    if cipher:
        try:
            context.set_ciphers(cipher)
        except ssl.SSLError:
            raise ProbeError(f"metadata.tls.cipher: no cipher matches {cipher!r}") from None
    return context


def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _Refused(Exception):
    """The server's ERR packet."""

    def __init__(self, code: int, message: str, server_offers_tls: bool = False):
        super().__init__(message)
        self.code, self.message, self.server_offers_tls = code, message, server_offers_tls

    def explain(self, t: _Target) -> str:
        if self.code == _ACCESS_DENIED:
            return (f"access denied for user {t.user!r}: wrong password, or the user may not "
                    f"connect from this host or without a client certificate "
                    f"(server: {self.message})")
        if self.code == _DB_ACCESS_DENIED:
            return f"user {t.user!r} has no access to the database {t.database!r}"
        if self.code == _UNKNOWN_DB:
            return f"the database {t.database!r} does not exist (nothing recorded there yet?)"
        if self.code == _SECURE_TRANSPORT_REQUIRED:
            return _PLAIN_REFUSED
        return f"the server refused the connection: {self.message} (error {self.code})"


class _Connection:
    """Packets over one socket, each step bounded by the deadline."""

    def __init__(self, sock: socket.socket, timeout: float):
        self.sock, self.timeout, self.seq = sock, timeout, 0

    def read(self) -> bytes:
        self.sock.settimeout(self.timeout)
        header = self._exactly(4)
        length = int.from_bytes(header[:3], "little")
        self.seq = header[3] + 1
        return self._exactly(length)

    def write(self, payload: bytes) -> None:
        self.sock.settimeout(self.timeout)
        self.sock.sendall(len(payload).to_bytes(3, "little") + bytes([self.seq & 0xFF])
                          + payload)
        self.seq += 1

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionResetError(0, "the server closed the connection")
            data += chunk
        return data


def _connect(t: _Target, timeout: float) -> socket.socket:
    if t.socket_path:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(t.socket_path)
        except OSError:
            sock.close()
            raise
        return sock
    return socket.create_connection((t.host, t.port), timeout=timeout)


def _login(t: _Target, tls: ssl.SSLContext | None, timeout: float,
           database_may_be_missing: bool) -> ServerHello:
    sock = _connect(t, timeout)
    try:
        conn = _Connection(sock, timeout)
        try:
            greeting = conn.read()
        except TimeoutError:
            where = t.socket_path or f"{t.host}:{t.port}"
            raise ProbeError(f"{where} took the connection but sent no MySQL greeting within "
                             f"{timeout:g} s (not a MySQL server, or it is overloaded)") from None
        version, caps, salt, _plugin = _parse_greeting(greeting)
        client = _CLIENT
        if tls is not None:
            if not caps & _SSL:
                raise ProbeError("the server does not offer TLS, which metadata.tls requires")
            client |= _SSL
            conn.write(struct.pack("<IIB23x", client, _MAX_PACKET, _UTF8))
            conn.sock = tls.wrap_socket(sock, server_hostname=t.host or None)
            sock = conn.sock
        conn.write(struct.pack("<IIB23x", client, _MAX_PACKET, _UTF8)
                   + t.user.encode() + b"\0"
                   + _length_prefixed(_native_scramble(t.password, salt))
                   + _NATIVE.encode() + b"\0")
        _finish_login(conn, t, caps, mariadb="MariaDB" in version)
        conn.seq = 0
        conn.write(b"\x02" + t.database.encode())  # COM_INIT_DB
        reply = conn.read()
        if reply[:1] == b"\xff":
            refused = _error_packet(reply)
            if not (database_may_be_missing and refused.code == _UNKNOWN_DB):
                raise refused
        conn.seq = 0
        conn.write(b"\x01")  # COM_QUIT
        return ServerHello(version, tls is not None)
    finally:
        sock.close()


def _parse_greeting(packet: bytes) -> tuple[str, int, bytes, str]:
    if packet[:1] == b"\xff":  # refused before the greeting: too many connections, blocked host
        code = int.from_bytes(packet[1:3], "little")
        raise _Refused(code, packet[3:].decode(errors="replace"))
    if packet[:1] != b"\x0a":
        raise ProbeError("not a MySQL server (its first packet is no protocol 10 greeting)")
    end = packet.index(b"\0", 1)
    version = packet[1:end].decode(errors="replace")
    pos = end + 1 + 4  # connection id
    salt = packet[pos:pos + 8]
    pos += 8 + 1
    caps = int.from_bytes(packet[pos:pos + 2], "little")
    pos += 2 + 1 + 2
    caps |= int.from_bytes(packet[pos:pos + 2], "little") << 16
    pos += 2
    salt_length = packet[pos]
    pos += 1 + 10
    plugin = ""
    if caps & _SECURE_CONNECTION:
        rest = max(13, salt_length - 8)
        salt += packet[pos:pos + rest].rstrip(b"\0")
        pos += rest
    if caps & _PLUGIN_AUTH:
        plugin = packet[pos:].split(b"\0", 1)[0].decode(errors="replace")
    return version, caps, salt[:20], plugin


def _finish_login(conn: _Connection, t: _Target, caps: int, *, mariadb: bool) -> None:
    """Reads the login's answer; an auth switch to ``mysql_native_password`` is answered."""
    while True:
        reply = conn.read()
        kind = reply[:1]
        if kind == b"\x00":
            return
        if kind == b"\xff":
            refused = _error_packet(reply)
            refused.server_offers_tls = bool(caps & _SSL)
            raise refused
        if kind == b"\xfe" and len(reply) > 1:  # AuthSwitchRequest
            name, _, data = reply[1:].partition(b"\0")
            plugin = name.decode(errors="replace")
            if plugin != _NATIVE:
                raise ProbeError(_unsupported_plugin(t.user, plugin, mariadb))
            conn.write(_native_scramble(t.password, data[:20]))
            continue
        # AuthMoreData (0x01): caching_sha2_password's exchange, which MLMD cannot do.
        raise ProbeError(_unsupported_plugin(t.user, "caching_sha2_password", mariadb))


def _unsupported_plugin(user: str, plugin: str, mariadb: bool) -> str:
    fix = ("IDENTIFIED VIA mysql_native_password USING PASSWORD('...')" if mariadb
           else "IDENTIFIED WITH mysql_native_password BY '...'")
    return (f"user {user!r} signs in with {plugin}, which ML Metadata's MySQL client cannot: "
            f"ALTER USER ... {fix}")


def _error_packet(packet: bytes) -> _Refused:
    code = int.from_bytes(packet[1:3], "little")
    message = packet[3:]
    if message[:1] == b"#":  # the SQL state
        message = message[6:]
    return _Refused(code, message.decode(errors="replace"))


def _native_scramble(password: str, salt: bytes) -> bytes:
    """``mysql_native_password``: SHA1(password) XOR SHA1(salt + SHA1(SHA1(password)))."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode()).digest()
    stage2 = hashlib.sha1(stage1).digest()
    mix = hashlib.sha1(salt + stage2).digest()
    return bytes(a ^ b for a, b in zip(stage1, mix, strict=True))


def _length_prefixed(data: bytes) -> bytes:
    return bytes([len(data)]) + data
