"""What serving a valid config needs from the machine: its files readable, its registry writable.

`load_config` checks the config's shape; this checks the world it names, so `forecaster serve
--check` and `serve` itself refuse, with every problem and its config field, what would otherwise
end in a traceback from the first reader: a missing trace (the first retrain), token file
(forecaster.service.app._load_token), TLS file (uvicorn's and gRPC's own loaders) or an unwritable
registry (the first saved version). Each check reads what the service will read, the way it reads
it: the token stripped and non-empty, the certificate and key through the ssl module uvicorn uses,
the registry by creating and removing a file in it. Nothing is left behind: a registry directory
that does not exist yet is checked through its nearest existing parent (the registry makes it).
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from forecaster.service.config import ServiceConfig


@dataclass(frozen=True)
class Problem:
    """One thing serving would fail on, by the config field that names it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def check_serving(config: ServiceConfig) -> list[Problem]:
    """Every problem serving `config` would meet, in the config's order; empty when there is none."""
    return list(_problems(config))


def format_problems(problems: list[Problem], source: str) -> str:
    """The message `serve` prints: like a config error, one line per problem under the file."""
    return "\n".join([f"{source}: cannot serve ({len(problems)} problem(s))", *(f"  {p}" for p in problems)])


def _problems(config: ServiceConfig) -> Iterator[Problem]:
    history = config.history
    if history.source == "trace" and history.trace is not None:
        yield from _readable("history.trace.path", history.trace.path)
    if history.source == "prometheus" and config.prometheus is not None:
        # Read again at each retrain (a rotated secret is picked up), so missing now fails every retrain.
        for name in ("bearer_token_file", "password_file", "ca_bundle"):
            path = getattr(config.prometheus, name)
            if path is not None:
                yield from _readable(f"prometheus.{name}", path)
    yield from _writable_dir("registry_dir", config.registry_dir)
    if config.discovery.enabled and config.discovery.kubeconfig is not None:
        yield from _readable("discovery.kubeconfig", config.discovery.kubeconfig)
    if config.auth.bearer_token_file is not None:
        yield from _token("auth.bearer_token_file", config.auth.bearer_token_file)
    if config.tls is not None:
        yield from _tls(config)


def _read(path: Path) -> bytes | str:
    """The file's bytes, or why it cannot be read (a str)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return f"{path} does not exist"
    except IsADirectoryError:
        return f"{path} is a directory, not a file"
    except OSError as error:
        return f"{path} cannot be read ({error.strerror or error})"


def _readable(field: str, path: Path) -> Iterator[Problem]:
    content = _read(path)
    if isinstance(content, str):
        yield Problem(field, content)


def _token(field: str, path: Path) -> Iterator[Problem]:
    content = _read(path)
    if isinstance(content, str):
        yield Problem(field, content)
    elif not content.strip():  # app._load_token's rule: an empty token would let anyone in
        yield Problem(field, f"{path} is empty")


def _writable_dir(field: str, path: Path) -> Iterator[Problem]:
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        yield Problem(field, f"{path} is not a directory" if existing == path
                      else f"{path} cannot be created: {existing} is not a directory")
        return
    try:
        # What the registry does (a temporary directory, then a rename): a permission bit, a
        # read-only mount or a full quota all show here, where os.access sees only the first.
        handle, name = tempfile.mkstemp(prefix=".prescaler-check-", dir=existing)
        os.close(handle)
        os.unlink(name)
    except OSError as error:
        reason = error.strerror or str(error)
        yield Problem(field, f"{path} is not writable ({reason})" if existing == path
                      else f"{path} cannot be created: {existing} is not writable ({reason})")


class _Encrypted(Exception):
    """The key asked for a password (OpenSSL would otherwise prompt on the terminal and wait)."""


def _no_password() -> bytes:
    raise _Encrypted


def _tls(config: ServiceConfig) -> Iterator[Problem]:
    tls = config.tls
    assert tls is not None  # checked by the caller
    yield from _chain(tls.cert_file, tls.key_file)
    yield from _ca("tls.client_ca_file", tls.client_ca_file)
    yield from _ca("tls.grpc_client_ca_file", tls.grpc_client_ca_file)


def _chain(cert: Path, key: Path) -> Iterator[Problem]:
    """The certificate and key as uvicorn loads them (ssl.SSLContext.load_cert_chain)."""
    found = []
    for field, path, marker, what in (("tls.cert_file", cert, b"-----BEGIN CERTIFICATE-----", "certificate"),
                                      ("tls.key_file", key, b"PRIVATE KEY-----", "private key")):
        content = _read(path)
        if isinstance(content, str):
            found.append(Problem(field, content))
        elif marker not in content:
            # The ssl module's own error ("PEM lib") names neither file: say which one it is.
            found.append(Problem(field, f"{path} holds no PEM {what} ({marker.decode()})"))
    if found:
        yield from found
        return
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=_no_password)
    except _Encrypted:
        yield Problem("tls.key_file", f"{key} is encrypted and the service has no password for it; "
                                      "give an unencrypted key")
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            yield Problem("tls.key_file", f"{key} does not match the certificate in tls.cert_file ({cert})")
        else:
            yield Problem("tls.cert_file", f"{cert} with tls.key_file {key} cannot be loaded "
                                           f"({error.reason or error})")


def _ca(field: str, path: Path | None) -> Iterator[Problem]:
    if path is None:
        return
    content = _read(path)
    if isinstance(content, str):
        yield Problem(field, content)
        return
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=path)
    except ssl.SSLError as error:
        yield Problem(field, f"{path} holds no PEM certificate the TLS library can load ({error.reason or error})")
