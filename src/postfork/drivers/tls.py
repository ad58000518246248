"""``ssl_mode`` with MySQL's meanings, the same on both drivers.

The two client libraries disagree when left to their defaults: given a CA, libmariadb (under
mysqlclient) checks the chain but not the host name, PyMySQL checks both, and PyMySQL's
``ssl_ca=`` keyword checks neither. postfork states every check itself, per mode:

============== ========= ==================== ==========================
ssl_mode       encrypted server cert checked  falls back to plain text
============== ========= ==================== ==========================
disabled       no        -                    -
preferred      if offered no (unauthenticated) yes, when the server has no TLS
required       yes       no                   never
verify_ca      yes       chain to ``ssl_ca``  never
verify_identity yes      chain + host name    never
============== ========= ==================== ==========================

Files are checked before each connect, so a missing or unreadable one is named in a clear error
(never its contents), and a failed handshake says which check failed.
"""

from __future__ import annotations

import os
import ssl

from ..errors import ConfigError
from ..url import DatabaseURL

_FILE_OPTIONS = ("ssl_ca", "ssl_cert", "ssl_key")


def tls_files(url: DatabaseURL) -> dict[str, str]:
    """The URL's TLS files, each checked readable: {"ca": path, "cert": path, "key": path}."""
    files = {}
    for option in _FILE_OPTIONS:
        if option in url.options:
            path = str(url.options[option])
            _check_readable(option, path)
            files[option[4:]] = path
    if files:  # an SSLContext costs milliseconds (OpenSSL's set-up, in a fresh worker: ~20)
        _check_contents(files)
    return files


def _check_contents(files: dict[str, str]) -> None:
    """Load the files as TLS would (Python's ssl: the same OpenSSL as both drivers), so a file
    that holds no certificate or a key that does not match is named before any connect."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if "ca" in files:
        try:
            context.load_verify_locations(cafile=files["ca"])
        except ssl.SSLError as exc:
            raise ConfigError(
                f"ssl_ca file {files['ca']!r} holds no usable certificate ({exc.reason})"
            ) from None
    if "cert" in files:
        try:
            context.load_cert_chain(files["cert"], files.get("key"))
        except ssl.SSLError as exc:
            raise ConfigError(
                f"ssl_cert {files['cert']!r} and ssl_key {files.get('key')!r} are not a usable "
                f"certificate and matching key ({exc.reason})"
            ) from None


def _check_readable(option: str, path: str) -> None:
    if not os.path.exists(path):
        raise ConfigError(f"{option} file {path!r} does not exist")
    if not os.path.isfile(path):
        raise ConfigError(f"{option} {path!r} is not a file")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ConfigError(f"{option} file {path!r} cannot be read: {exc.strerror}") from None


def tls_failure_reason(text: str, url: DatabaseURL) -> str | None:
    """Which check a failed TLS handshake failed, from the driver's message; None if not TLS."""
    lowered = text.lower()
    if "expired" in lowered:
        return "TLS: the server's certificate has expired (or is not yet valid)"
    if (
        "mismatch" in lowered
        or "validation of ssl server certificate failed" in lowered
        or ("hostname" in lowered and "match" in lowered)
    ):
        return f"TLS: the server's certificate is not issued to {url.host!r} (verify_identity)"
    if (
        "self-signed" in lowered
        or "self signed" in lowered
        or "unable to get local issuer" in lowered
        or "certificate verify failed" in lowered
    ):
        return "TLS: the server's certificate is not signed by ssl_ca"
    if ("ssl" in lowered or "tls" in lowered) and (
        "not support" in lowered or "doesn't support" in lowered or "does not offer" in lowered
    ):
        return f"TLS: the server does not offer TLS (ssl_mode={url.ssl_mode})"
    if "tls/ssl error" in lowered or "ssl connection error" in lowered or "[ssl" in lowered:
        return "TLS handshake failed"
    return None


_contexts: dict[tuple[object, ...], ssl.SSLContext] = {}


def ssl_context(url: DatabaseURL) -> ssl.SSLContext | None:
    """``ssl_mode`` as an ``ssl.SSLContext`` (the asyncio drivers take one), None when
    disabled. One context per settings and file versions per process: building one that
    loads a CA costs milliseconds, and a context holds no connection state."""
    mode = url.ssl_mode
    if mode == "disabled":
        return None
    files = tls_files(url)
    if mode in ("preferred", "required"):
        files.pop("ca", None)  # unauthenticated by definition: no chain check
    key = (mode, *sorted(files.items()), *(os.stat(path).st_mtime for path in files.values()))
    context = _contexts.get(key)
    if context is None:
        context = _contexts[key] = _new_context(mode, files)
    return context


def _new_context(mode: str, files: dict[str, str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = mode == "verify_identity"
    if mode in ("verify_ca", "verify_identity"):
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=files["ca"])
    else:
        context.verify_mode = ssl.CERT_NONE
    if "cert" in files:
        context.load_cert_chain(files["cert"], files.get("key"))
    return context
