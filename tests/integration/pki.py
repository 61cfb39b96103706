"""A throwaway PKI for the TLS tests, made with `cryptography`: a CA, a
server certificate for 127.0.0.1/localhost, client certificates (valid,
expired, signed by an unknown CA). Every file is PEM; keys are EC P-256
(fast to generate) unless RSA is asked for."""

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(**attrs):
    order = [("C", NameOID.COUNTRY_NAME), ("O", NameOID.ORGANIZATION_NAME),
             ("OU", NameOID.ORGANIZATIONAL_UNIT_NAME), ("CN", NameOID.COMMON_NAME)]
    return x509.Name([x509.NameAttribute(oid, attrs[k]) for k, oid in order if k in attrs])


def _key(kind):
    return rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())


def _write_key(key, path):
    Path(path).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def _write_cert(cert, path):
    Path(path).write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class Ca:
    def __init__(self, directory, name="Shardline Test CA"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        slug = name.lower().replace(" ", "-")
        self.key = _key("ec")
        now = dt.datetime.now(dt.timezone.utc)
        subject = _name(O="Shardline Tests", CN=name)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = self.dir / f"{slug}.pem"
        _write_cert(self.cert, self.cert_path)

    def issue(self, stem, server=False, expired=False, kind="ec", **subject):
        """Write <stem>.crt and <stem>.key; return (cert_path, key_path)."""
        key = _key(kind)
        now = dt.datetime.now(dt.timezone.utc)
        if expired:
            start, end = now - dt.timedelta(days=30), now - dt.timedelta(days=1)
        else:
            start, end = now - dt.timedelta(hours=1), now + dt.timedelta(days=10)
        b = (
            x509.CertificateBuilder()
            .subject_name(_name(**subject)).issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            b = b.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        else:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        cert_path, key_path = self.dir / f"{stem}.crt", self.dir / f"{stem}.key"
        _write_cert(cert, cert_path)
        _write_key(key, key_path)
        return cert_path, key_path


def serial_of(pem_bytes):
    return x509.load_pem_x509_certificate(pem_bytes).serial_number


def serial_of_der(der):
    return x509.load_der_x509_certificate(der).serial_number
