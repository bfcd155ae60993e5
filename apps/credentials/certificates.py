"""Reading uploaded TLS material: a PEM chain and its private key, checked before anything is stored."""

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtensionOID


class CertificateRejected(ValueError):
    """The material cannot serve TLS; the message says why and never quotes the key."""


@dataclass(frozen=True)
class ParsedCertificate:
    subject: str
    dns_names: list[str]
    not_after: datetime
    fingerprint_sha256: str


def parse_certificate(chain_pem: str, private_key_pem: str, *, now: datetime) -> ParsedCertificate:
    """Check that the chain parses, that its first certificate is current and that the key is its key."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError:
        raise CertificateRejected("the chain is not PEM certificates") from None
    try:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise CertificateRejected("the private key is not an unencrypted PEM private key") from None
    leaf = chain[0]
    public_format = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*public_format) != leaf.public_key().public_bytes(*public_format):
        raise CertificateRejected("the private key does not belong to the chain's first certificate")
    if not leaf.not_valid_before_utc <= now < leaf.not_valid_after_utc:
        raise CertificateRejected(
            f"the certificate is valid from {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} "
            f"to {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, not now"
        )
    try:
        names = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        dns_names = sorted(name.lower() for name in names.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        dns_names = []
    return ParsedCertificate(
        subject=leaf.subject.rfc4514_string()[:300],
        dns_names=dns_names,
        not_after=leaf.not_valid_after_utc,
        fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex(),
    )
