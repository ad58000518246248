"""``mysql://`` URL parsing and redaction: the only place a URL string becomes settings.

Parsing is done by ``urllib.parse``; this module adds validation with precise messages and keeps
the password out of every repr and printable form.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .errors import ConfigError
from .validate import POSITIVE_SECONDS

_SCHEMES = {"mysql", "mariadb"}
_DRIVER_ALIASES = {
    "mysqldb": "mysqlclient",
    "mysqlclient": "mysqlclient",
    "pymysql": "pymysql",
    "asyncmy": "asyncmy",
    "aiomysql": "aiomysql",
}
_FLOAT_OPTIONS = ("connect_timeout", "read_timeout", "write_timeout")
_TLS_OPTIONS = ("ssl_ca", "ssl_cert", "ssl_key")
_TEXT_OPTIONS = ("unix_socket", "charset", *_TLS_OPTIONS)
# MySQL's --ssl-mode values, in order of strength
SSL_MODES = ("disabled", "preferred", "required", "verify_ca", "verify_identity")
DEFAULT_PORT = 3306


@dataclasses.dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL; ``str()`` and ``repr()`` never show the password."""

    host: str = "localhost"
    port: int = DEFAULT_PORT
    user: str = "root"
    password: str = dataclasses.field(default="", repr=False)
    database: str | None = None
    driver: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def unix_socket(self) -> str | None:
        value = self.options.get("unix_socket")
        return str(value) if value else None

    @property
    def tls(self) -> dict[str, str]:
        """TLS files as both drivers' ``ssl={"ca": ..., "cert": ..., "key": ...}`` expects."""
        return {key[4:]: str(self.options[key]) for key in _TLS_OPTIONS if key in self.options}

    @property
    def ssl_mode(self) -> str:
        """The URL's ``ssl_mode``, else the default: ``verify_identity`` with an ``ssl_ca`` (a
        CA means the server must prove who it is), ``required`` with only a client certificate,
        ``disabled`` with no TLS option."""
        explicit = self.options.get("ssl_mode")
        if explicit:
            return str(explicit)
        if "ssl_ca" in self.options:
            return "verify_identity"
        return "required" if "ssl_cert" in self.options else "disabled"

    @property
    def target(self) -> str:
        """Where the connection goes, for messages: ``host:port`` or ``unix socket /path``."""
        if self.unix_socket:
            return f"unix socket {self.unix_socket}"
        return f"{self.host}:{self.port}"

    def redacted(self) -> str:
        """The URL with the password replaced by ``***`` (safe for logs and errors)."""
        return self._render("***" if self.password else "")

    def render_secret(self) -> str:
        """The full URL including the password, for handing to a child process's environment."""
        return self._render(quote(self.password, safe=""))

    def _render(self, password: str) -> str:
        scheme = "mysql" if self.driver is None else f"mysql+{self.driver}"
        auth = quote(self.user, safe="") + (f":{password}" if password else "")
        path = f"/{quote(self.database, safe='')}" if self.database else ""
        query = "&".join(f"{k}={quote(str(v), safe='/')}" for k, v in sorted(self.options.items()))
        return f"{scheme}://{auth}@{self.host}:{self.port}{path}" + (f"?{query}" if query else "")

    def __str__(self) -> str:
        return self.redacted()


def parse_url(url: str | DatabaseURL) -> DatabaseURL:
    """Parse ``mysql://user:password@host:port/db?unix_socket=/path`` or raise ConfigError."""
    if isinstance(url, DatabaseURL):
        return url
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("database URL is empty; expected mysql://user:password@host:port/db")
    parts = urlsplit(url.strip())
    driver = _parse_scheme(parts.scheme)
    if parts.fragment or "@" in parts.path + parts.query:
        # An unencoded '/', '?' or '#' in the password splits the URL early; echoing the parts
        # would print the rest of the password.
        raise ConfigError(
            "database URL could not be split into user, host and database: percent-encode "
            "special characters in the user and password ('#' is %23, '@' is %40, '/' is %2F, "
            "'?' is %3F)"
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(
            f"database URL has an invalid port: {_safe_netloc(parts.netloc)!r}"
        ) from None
    return DatabaseURL(
        host=unquote(parts.hostname or "") or "localhost",
        port=port if port is not None else DEFAULT_PORT,
        user=unquote(parts.username) if parts.username else "root",
        password=unquote(parts.password) if parts.password else "",
        database=_parse_database(parts.path),
        driver=driver,
        options=_parse_options(parts.query),
    )


def _parse_scheme(scheme: str) -> str | None:
    base, _, driver = scheme.lower().partition("+")
    if base not in _SCHEMES:
        shown = scheme or "(none)"
        raise ConfigError(f"database URL scheme must be mysql:// or mariadb://, got {shown!r}")
    if not driver:
        return None
    if driver not in _DRIVER_ALIASES:
        known = ", ".join(sorted(_DRIVER_ALIASES))
        raise ConfigError(f"unknown driver {driver!r} in database URL scheme; known: {known}")
    return _DRIVER_ALIASES[driver]


def _parse_database(path: str) -> str | None:
    name = unquote(path.lstrip("/"))
    if "/" in name:
        raise ConfigError(f"database URL path must be a single database name, got {name!r}")
    return name or None


def _parse_options(query: str) -> dict[str, Any]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError(f"database URL has a malformed query string: {query!r}") from None
    options = dict(_parse_option(key, value) for key, value in pairs)
    _check_tls_options(options)
    return options


def _check_tls_options(options: dict[str, Any]) -> None:
    mode = options.get("ssl_mode")
    files = [key for key in _TLS_OPTIONS if key in options]
    if mode == "disabled" and files:
        raise ConfigError(f"ssl_mode=disabled contradicts {', '.join(files)}: remove one of them")
    if mode in ("verify_ca", "verify_identity") and "ssl_ca" not in options:
        raise ConfigError(
            f"ssl_mode={mode} needs ssl_ca (the CA file that signed the server's certificate)"
        )
    if ("ssl_cert" in options) != ("ssl_key" in options):
        raise ConfigError("ssl_cert and ssl_key go together (a client certificate and its key)")


def _parse_option(key: str, value: str) -> tuple[str, Any]:
    if key == "ssl_mode":
        mode = value.strip().lower().replace("-", "_")
        if mode not in SSL_MODES:
            raise ConfigError(
                f"database URL option ssl_mode must be one of {', '.join(SSL_MODES)}, got {value!r}"
            )
        return key, mode
    if key in _TEXT_OPTIONS:
        if not value:
            raise ConfigError(f"database URL option {key!r} is empty")
        return key, value
    if key in _FLOAT_OPTIONS:
        return key, _positive_float(key, value)
    known = ", ".join(sorted((*_TEXT_OPTIONS, *_FLOAT_OPTIONS, "ssl_mode")))
    raise ConfigError(f"unknown database URL option {key!r}; known options: {known}")


def _positive_float(key: str, value: str) -> float:
    try:
        return POSITIVE_SECONDS.parse(value)
    except ValueError:
        raise ConfigError(
            f"database URL option {key!r} must be {POSITIVE_SECONDS.description}"
        ) from None


def _safe_netloc(netloc: str) -> str:
    """The host part of a netloc with any credentials dropped, for error messages."""
    return netloc.rpartition("@")[2]
