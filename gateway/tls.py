"""HTTPS for a node: the certificate and key the site file names, checked before serving.

``[gateway] tls_cert`` and ``tls_key`` (paths relative to the site file) make uvicorn
serve TLS on the node's port; then the gateway sends HSTS and marks cookies Secure. Both
files are loaded once at start the way the server will load them (``ssl.SSLContext``), so
a missing, unreadable or mismatched pair stops the start with a message that names the
key and what to do, rather than the first browser failing its handshake.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

# One year, as HSTS preload lists ask; no includeSubDomains: the district's other hosts are not ours.
HSTS_VALUE = "max-age=31536000"


class TlsConfigError(ValueError):
    """The certificate or key cannot be used; the message names the key and the fix."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


def parse_tls(cert: object, key: object, base: Path, where: str) -> TlsFiles | None:
    """``[gateway] tls_cert`` and ``tls_key``: both or neither; each a readable PEM file, and
    the key the certificate's own."""
    if cert is None and key is None:
        return None
    for name, value in (("tls_cert", cert), ("tls_key", key)):
        if value is None:
            other = "tls_key" if name == "tls_cert" else "tls_cert"
            raise TlsConfigError(
                f"{where} {other} is set but {name} is not: give both (the certificate chain and its "
                "private key, PEM files), or neither to serve plain HTTP"
            )
        if not isinstance(value, str) or not value.strip():
            raise TlsConfigError(f"{where} {name} must be the path of a PEM file (relative to the site file)")
    assert isinstance(cert, str) and isinstance(key, str)
    files = TlsFiles((base / cert).resolve(), (base / key).resolve())
    for name, path in (("tls_cert", files.cert), ("tls_key", files.key)):
        if not path.is_file():
            raise TlsConfigError(
                f"{where} {name}: no such file {path}; put the PEM file there or correct the path "
                "(relative to the site file)"
            )
        try:
            path.open("rb").close()
        except OSError as exc:
            raise TlsConfigError(
                f"{where} {name}: {path} cannot be read ({exc.strerror}); let the user running the "
                "gateway read it (chmod/chown), keeping the key readable by nobody else"
            ) from None
    _check_pair(files, where)
    return files


def _check_pair(files: TlsFiles, where: str) -> None:
    def encrypted() -> bytes:  # else OpenSSL would ask for a pass phrase on the terminal
        raise TlsConfigError(
            f"{where} tls_key {files.key} is encrypted with a pass phrase; the gateway starts unattended, "
            "so store it unencrypted (openssl pkey -in KEY -out KEY.plain) and readable only by the gateway's user"
        )

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(files.cert), str(files.key), password=encrypted)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc).upper() or "key values mismatch" in str(exc):
            raise TlsConfigError(
                f"{where} tls_key {files.key} is not the private key of the certificate tls_cert "
                f"{files.cert}; name the key that was made with this certificate"
            ) from None
        raise TlsConfigError(
            f"{where} tls_cert {files.cert} and tls_key {files.key} are not a PEM certificate chain and "
            f"its unencrypted private key ({exc.reason or exc}); convert them to PEM "
            "(openssl x509 / openssl pkey) or correct the paths"
        ) from None
