"""Certificates for TLS tests, made with cryptography in a test's folder.

Two shapes a mail server really has: a certificate signed by a private CA, and a self-signed one
like the "snakeoil" certificate Debian makes for a default Postfix (CA:FALSE, the host name as
both CN and subjectAltName). SmtpTestServer serves either, with STARTTLS or implicit TLS.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAME = "mail.clinic.example"


@dataclass(frozen=True)
class Certificate:
    cert: Path  # PEM; a client trusts it with ?cafile= when it is self-signed
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@dataclass(frozen=True)
class Authority:
    ca: Path  # the CA's PEM certificate: what a client trusts with ?cafile=
    server: Certificate  # a server certificate the CA signed


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        (folder / f"{stem}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


def _builder(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (x509.CertificateBuilder()
            .subject_name(_name(subject)).issuer_name(_name(issuer)).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2)))


def _server_extensions(builder: x509.CertificateBuilder, name: str) -> x509.CertificateBuilder:
    return (builder
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False))


def make_authority(folder: Path, name: str = SERVER_NAME) -> Authority:
    """A CA (ca.pem) and a certificate for `name` it signed (server.pem, server.key)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (_builder("Clinic test CA", "Clinic test CA", ca_key)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    server = (_server_extensions(_builder(name, "Clinic test CA", key), name)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    return Authority(_write(folder, "ca", ca, None), Certificate(_write(folder, "server", server, key),
                                                                  folder / "server.key"))


def make_self_signed(folder: Path, name: str = SERVER_NAME) -> Certificate:
    """A self-signed certificate for `name`, shaped like Debian's ssl-cert-snakeoil.pem (make-ssl-cert:
    CA:FALSE and the name, nothing else)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _server_extensions(_builder(name, name, key), name).sign(key, hashes.SHA256())
    return Certificate(_write(folder, "snakeoil", cert, key), folder / "snakeoil.key")
