"""Test TLS material made with cryptography: a self-signed certificate for some DNS names."""

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from apps.core.crypto import Secret
from apps.gateways.renderers.base import TlsCertificate


def self_signed(*names: str, days: int = 30, not_before: datetime | None = None) -> tuple[str, str]:
    """(certificate PEM, PKCS#8 key PEM) for ``names``, valid from ``not_before`` (default: an hour ago)."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or datetime.now(UTC) - timedelta(hours=1)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def tls_certificate(*names: str) -> TlsCertificate:
    chain, key = self_signed(*names)
    return TlsCertificate(chain_pem=chain, private_key=Secret(key))
