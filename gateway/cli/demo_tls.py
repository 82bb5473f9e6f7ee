"""A certificate for ``sightline demo --tls``: a throwaway certificate authority made for
this data dir, and a server certificate it signs for the demo's host names.

Only for trying HTTPS out: a real site names the certificate its own CA (or Let's
Encrypt) issued in ``[gateway] tls_cert`` / ``tls_key``. The CA's private key is thrown
away once the server certificate is signed, so it can vouch for nothing else; a browser
told to trust ``tls/demo-ca.pem`` accepts this demo and no other site.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TLS_DIR = "tls"
CA_FILE, CERT_FILE, KEY_FILE = "demo-ca.pem", "demo-cert.pem", "demo-key.pem"
VALID_DAYS = 90


def demo_certificate(data_dir: Path, host: str) -> tuple[Path, Path, Path]:
    """(CA, certificate chain, key) in ``DIR/tls/``, made unless they exist and name ``host``."""
    folder = data_dir / TLS_DIR
    ca, cert, key = folder / CA_FILE, folder / CERT_FILE, folder / KEY_FILE
    if ca.exists() and cert.exists() and key.exists() and _names(cert, host):
        return ca, cert, key
    folder.mkdir(parents=True, exist_ok=True)
    ca_pem, cert_pem, key_pem = _make(host)
    ca.write_bytes(ca_pem)
    cert.write_bytes(cert_pem + ca_pem)
    key.unlink(missing_ok=True)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem)
    return ca, cert, key


def _names(cert: Path, host: str) -> bool:
    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
        names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    fresh = loaded.not_valid_after_utc > datetime.now(UTC) + timedelta(days=1)
    return fresh and any(_host_entry(host) == n for n in names)


def _host_entry(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _make(host: str) -> tuple[bytes, bytes, bytes]:
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sightline demo CA (throwaway)")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # certificate and CRL signing only
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    hosts = dict.fromkeys([host, "127.0.0.1", "localhost", "::1"])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([_host_entry(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem
