"""
WireTransport over TLS, against a loopback server whose certificate a local CA (made here
with `cryptography`) signed: verification on by default, ``verify=`` and ``SSL_CERT_FILE``
honoured, a wrong host refused, and the error says what failed and for which host.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rungen_async import AsyncRunGen, TLSVerificationError
from rungen_async._http._pool import WireTransport
from tests.test_wire_transport import GUARD, ok


@pytest.fixture
def anyio_backend() -> str:
    """WireTransport runs only on asyncio."""
    return "asyncio"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca_and_server(directory: Path, *, san: x509.GeneralName) -> tuple[Path, Path, Path]:
    """A CA certificate and a server certificate for *san* it signed: (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("rungen test CA"))
        .issuer_name(_name("rungen test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("server"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


LOOPBACK = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))


@asynccontextmanager
async def tls_server(cert: Path, key: Path) -> AsyncIterator[str]:
    """An HTTPS server on 127.0.0.1 answering every request with ``ok``; yields its URL."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(ok())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_verification_is_on_by_default_and_says_which_host(tmp_path: Path) -> None:
    """An unknown CA fails as ConnectError naming the host, from SSLCertVerificationError."""
    _, cert, key = make_ca_and_server(tmp_path, san=LOOPBACK)
    async with tls_server(cert, key) as url:
        async with WireTransport() as transport:
            with pytest.raises(httpx.ConnectError) as error:
                await transport.exchange("GET", url, {}, None, GUARD)
        async with httpx.AsyncClient() as client:  # httpx's defaults refuse it too
            with pytest.raises(httpx.ConnectError):
                await client.get(url)

    assert "certificate verification failed for 127.0.0.1" in str(error.value)
    assert isinstance(error.value.__cause__, ssl.SSLCertVerificationError)


async def test_verify_context_is_honoured(tmp_path: Path) -> None:
    """verify= an SSLContext trusting the local CA: the request goes through."""
    ca, cert, key = make_ca_and_server(tmp_path, san=LOOPBACK)
    context = ssl.create_default_context(cafile=ca)
    async with tls_server(cert, key) as url, WireTransport(verify=context) as transport:
        reply = await transport.exchange("GET", url, {}, None, GUARD)

    assert reply.content == b"ok"


async def test_ssl_cert_file_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SSL_CERT_FILE naming the local CA is trusted by the default verify=True, as in httpx."""
    ca, cert, key = make_ca_and_server(tmp_path, san=LOOPBACK)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    async with tls_server(cert, key) as url, WireTransport() as transport:
        reply = await transport.exchange("GET", url, {}, None, GUARD)

    assert reply.content == b"ok"


async def test_hostname_mismatch_is_refused(tmp_path: Path) -> None:
    """A trusted certificate for another name is refused for 127.0.0.1."""
    ca, cert, key = make_ca_and_server(tmp_path, san=x509.DNSName("api.other.test"))
    context = ssl.create_default_context(cafile=ca)
    async with tls_server(cert, key) as url, WireTransport(verify=context) as transport:
        with pytest.raises(httpx.ConnectError, match=r"verification failed for 127\.0\.0\.1") as e:
            await transport.exchange("GET", url, {}, None, GUARD)

    assert isinstance(e.value.__cause__, ssl.SSLCertVerificationError)
    assert "mismatch" in str(e.value)


async def test_verify_false_skips_checking(tmp_path: Path) -> None:
    """verify=False talks to any certificate, as httpx's does."""
    _, cert, key = make_ca_and_server(tmp_path, san=LOOPBACK)
    async with tls_server(cert, key) as url, WireTransport(verify=False) as transport:
        reply = await transport.exchange("GET", url, {}, None, GUARD)

    assert reply.content == b"ok"


async def test_async_rungen_fails_at_once_on_a_bad_certificate(tmp_path: Path) -> None:
    """Through the client, a failed verification is TLSVerificationError, tried only once."""
    _, cert, key = make_ca_and_server(tmp_path, san=LOOPBACK)
    async with tls_server(cert, key) as url, AsyncRunGen("rg-key", base_url=url) as client:
        with pytest.raises(TLSVerificationError, match=r"127\.0\.0\.1") as error:
            await client.get_job("app_1", "job_1")

    assert error.value.host == "127.0.0.1"
    assert client.retry_count == 0
