"""Turn a failed download into one message a user (or their IT department) can act on.

Model downloads fail mostly behind hospital and corporate networks: proxies, firewalls that block a
host, SSL inspection that replaces certificates (Zscaler & co.). urllib reports all of these as nested
``URLError``/``OSError`` objects; this module tells them apart and says, every time, which URL failed
and where the file can be placed by hand instead (the manual-drop folder), because that is the fix
that always works.
"""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from ..errors import DDICModelError
from .manifest import ModelEntry, format_bytes

CA_ENV_VARS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

#: exceptions meaning "the connection broke while the file was coming": worth one resumed retry
DROPPED = (http.client.IncompleteRead, ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
           TimeoutError, socket.timeout)


def is_dropped_connection(exc: BaseException) -> bool:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) and not isinstance(
        exc, urllib.error.HTTPError) else exc
    return isinstance(reason, DROPPED)


def manual_hint(entry: ModelEntry, folder: Path) -> str:
    """The always-available way out: fetch the file in a browser and drop it into the cache."""
    sha = f" (SHA-256 {entry.sha256})" if entry.sha256 else ""
    size = f" ({format_bytes(entry.bytes)})" if entry.bytes else ""
    return (f"You can also download {entry.url}{size} in a web browser and save it as "
            f"{folder / entry.file_name}; DDICSlicer checks it{sha} and uses it.")


def proxy_for(url: str) -> str | None:
    """The proxy urllib uses for ``url`` (environment / system settings), or None."""
    parsed = urlparse(url)
    try:
        if urllib.request.proxy_bypass(parsed.hostname or ""):
            return None
    except OSError:
        pass
    return urllib.request.getproxies().get(parsed.scheme)


def describe(exc: BaseException, url: str, entry: ModelEntry, folder: Path) -> DDICModelError:
    """A :class:`DDICModelError` for ``exc`` raised while downloading ``url`` into ``folder``."""
    proxy = proxy_for(url)
    hint = manual_hint(entry, folder)
    head = f"Downloading model {entry.id!r} from {url} failed"

    if isinstance(exc, urllib.error.HTTPError):
        if exc.code == 407:
            return DDICModelError(
                f"{head}: the proxy {proxy or ''} requires authentication (HTTP 407). Put the credentials in "
                f"the proxy setting (HTTPS_PROXY=http://user:password@host:port) or ask IT to allow {_host(url)}. "
                f"{hint}")
        advice = {
            403: "access denied; a firewall or proxy may block this host, or the link expired",
            404: "the file is not at this address (moved or removed)",
            410: "the file was removed from this address",
            429: "too many requests; wait a few minutes and try again",
        }.get(exc.code, "a server problem; try again later" if exc.code >= 500 else "the server refused the request")
        return DDICModelError(f"{head}: HTTP {exc.code} {exc.reason} ({advice}). {hint}")

    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    text = str(reason)
    if isinstance(reason, ssl.SSLCertVerificationError) or (
            isinstance(reason, ssl.SSLError) and "CERTIFICATE_VERIFY_FAILED" in text):
        return DDICModelError(
            f"{head}: the SSL certificate could not be verified ({getattr(reason, 'verify_message', '') or text}). "
            f"This usually means a corporate proxy or firewall inspects SSL traffic and presents its own "
            f"certificate. Ask IT for the organisation's root certificate (PEM) and point SSL_CERT_FILE or "
            f"REQUESTS_CA_BUNDLE at it, then try again. {hint}")
    if isinstance(reason, ssl.SSLError):
        return DDICModelError(f"{head}: SSL error ({text}); a proxy or firewall may interfere with encrypted "
                              f"connections. {hint}")
    if isinstance(reason, OSError) and "tunnel connection failed" in text.lower():
        return DDICModelError(f"{head}: the proxy {proxy or ''} refused to connect to {_host(url)} ({text}). "
                              f"Ask IT to allow {_host(url)} through the proxy. {hint}")
    if proxy and isinstance(reason, (ConnectionRefusedError, socket.gaierror, TimeoutError, socket.timeout)):
        return DDICModelError(f"{head}: the proxy {proxy} could not be reached ({text}). Check the proxy "
                              f"setting (HTTP_PROXY / HTTPS_PROXY / system settings). {hint}")
    if isinstance(reason, socket.gaierror):
        return DDICModelError(f"{head}: the host {_host(url)} could not be found ({text}). The computer may be "
                              f"offline, DNS may be failing, or the network may need a proxy (set HTTPS_PROXY). "
                              f"{hint}")
    if isinstance(reason, ConnectionRefusedError):
        return DDICModelError(f"{head}: the connection to {_host(url)} was refused; a firewall may block it or "
                              f"the server is down. {hint}")
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return DDICModelError(f"{head}: no answer from {_host(url)} (timed out); the network may be offline or "
                              f"a firewall may drop the connection. {hint}")
    if isinstance(reason, DROPPED):
        return DDICModelError(f"{head}: the connection dropped repeatedly ({type(reason).__name__}). The "
                              f"unfinished download is kept and resumed by the next attempt. {hint}")
    if isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return DDICModelError(f"{head}: the network is unreachable ({text}); check the connection. {hint}")
    return DDICModelError(f"{head}: {type(reason).__name__}: {text}. {hint}")


def disk_full(entry: ModelEntry, folder: Path, needed: int | None, free: int | None) -> DDICModelError:
    need = f" needs {format_bytes(needed)}" if needed else ""
    have = f", {format_bytes(free)} free" if free is not None else ""
    return DDICModelError(f"Not enough disk space for model {entry.id!r} in {folder} (it{need}{have}). Free "
                          f"space, or set DDIC_CACHE_DIR to a folder on a larger disk, and try again.")


def ssl_context() -> ssl.SSLContext:
    """The default verifying context, with the CA bundle from SSL_CERT_FILE / REQUESTS_CA_BUNDLE if set.

    urllib already reads SSL_CERT_FILE through OpenSSL; REQUESTS_CA_BUNDLE is honoured too because
    that is the variable IT departments usually document for Python.
    """
    import os

    for var in CA_ENV_VARS:
        value = os.environ.get(var)
        if value:
            if not Path(value).is_file():
                raise DDICModelError(f"{var} is set to {value!r}, which is not a file. Point it at the PEM "
                                     f"file with your organisation's root certificate, or unset it.")
            return ssl.create_default_context(cafile=value)
    return ssl.create_default_context()


def _host(url: str) -> str:
    return urlparse(url).netloc or url
