"""Throwaway certificates for the HTTPS tests: a CA of the test's own, a server
certificate it signs for 127.0.0.1 and localhost, and the wrong things an operator may
give instead (another key, an encrypted key, a file that is not PEM)."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class CertFiles:
    ca: Path  # trust this
    cert: Path  # the server's certificate chain
    key: Path
    other_key: Path  # a key of no certificate here
    encrypted_key: Path  # the right key, under a pass phrase
    spki_sha256: str  # base64 SHA-256 of the server key (Chromium's --ignore-certificate-errors-spki-list)


def _key_pem(key: ec.EllipticCurvePrivateKey, encryption=None) -> bytes:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, encryption or serialization.NoEncryption())


def make_certs(folder: Path) -> CertFiles:
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sightline test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = CertFiles(
        ca=folder / "ca.pem",
        cert=folder / "cert.pem",
        key=folder / "key.pem",
        other_key=folder / "other-key.pem",
        encrypted_key=folder / "encrypted-key.pem",
        spki_sha256=base64.b64encode(
            hashlib.sha256(
                key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ).digest()
        ).decode(),
    )
    paths.ca.write_bytes(ca.public_bytes(PEM))
    paths.cert.write_bytes(cert.public_bytes(PEM) + ca.public_bytes(PEM))
    paths.key.write_bytes(_key_pem(key))
    paths.other_key.write_bytes(_key_pem(ec.generate_private_key(ec.SECP256R1())))
    paths.encrypted_key.write_bytes(_key_pem(key, serialization.BestAvailableEncryption(b"pass phrase")))
    return paths


def tls_site_text(text: str, certs: CertFiles, *, key: Path | None = None) -> str:
    """A site file's text with ``[gateway] tls_cert`` and ``tls_key`` naming ``certs``."""
    lines = f'tls_cert = "{certs.cert}"\ntls_key = "{key or certs.key}"\n'
    assert "[gateway]\n" in text
    return text.replace("[gateway]\n", "[gateway]\n" + lines, 1)
