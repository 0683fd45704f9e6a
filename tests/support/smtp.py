"""A real SMTP server (aiosmtpd) in the test process, on a port the OS chooses.

It runs its own event loop in a thread, so it answers whatever the test's loop is doing. It
keeps every message it accepted (parsed with the ``email`` package) and can inject faults:
refuse the next N messages with a temporary error, require STARTTLS or implicit TLS with a
certificate made for the test, or require AUTH with a user name and password.
"""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import ipaddress
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LINK = re.compile(r"https?://[^\s<>\"]+")


@dataclass
class Mailbox:
    """What the server accepted, and the faults it injects."""

    messages: list[EmailMessage] = field(default_factory=list)
    #: Envelope recipients of each accepted message.
    recipients: list[list[str]] = field(default_factory=list)
    #: Answer the next N DATA commands ``451`` (a temporary failure): the sender must retry.
    refuse_next: int = 0
    #: Answer every DATA command ``451``.
    refuse_all: bool = False
    refused: int = 0
    #: User names that authenticated.
    logins: list[str] = field(default_factory=list)
    credentials: tuple[str, str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            if self.refuse_all or self.refuse_next > 0:
                self.refuse_next = max(self.refuse_next - 1, 0)
                self.refused += 1
                return "451 4.3.0 Try again later (injected by the test)"
            raw = envelope.content if isinstance(envelope.content, bytes) else b""
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            self.messages.append(parsed)
            self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and self.credentials is not None:
            user, password = data.login.decode(), data.password.decode()
            if (user, password) == self.credentials:
                self.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def to(self, address: str) -> list[EmailMessage]:
        """The messages whose ``To`` is ``address``."""
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


def text_of(message: EmailMessage) -> str:
    """The plain-text body."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "no text/plain part"
    return str(part.get_content())  # type: ignore[attr-defined]


def html_of(message: EmailMessage) -> str:
    """The HTML body."""
    part = message.get_body(preferencelist=("html",))
    assert part is not None, "no text/html part"
    return str(part.get_content())  # type: ignore[attr-defined]


def links_of(message: EmailMessage) -> list[str]:
    """The links of the text body, in order."""
    return LINK.findall(text_of(message))


def token_of(link: str) -> str:
    """The token a link carries in its fragment (``#token=...``)."""
    assert "#token=" in link, link
    return link.split("#token=", 1)[1]


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and 127.0.0.1: (certificate, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def smtp_server(
    *,
    tls: str = "none",
    certificate: tuple[Path, Path] | None = None,
    credentials: tuple[str, str] | None = None,
) -> Iterator[tuple[int, Mailbox]]:
    """Serve SMTP on 127.0.0.1 (port chosen by the OS) until the block ends: (port, mailbox).

    ``tls``: ``none``, ``starttls`` (required before MAIL) or ``tls`` (implicit), with
    ``certificate``; ``credentials`` makes AUTH required.
    """
    mailbox = Mailbox(credentials=credentials)
    context = None
    if tls != "none":
        assert certificate is not None, "TLS needs a certificate"
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*certificate)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port: list[int] = []

    def factory() -> SMTP:
        return SMTP(
            mailbox,
            hostname="localhost",
            tls_context=context if tls == "starttls" else None,
            require_starttls=tls == "starttls",
            auth_required=credentials is not None,
            auth_require_tls=tls != "none",
            authenticator=mailbox.authenticate,
            loop=loop,
        )

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(
            loop.create_server(factory, "127.0.0.1", 0, ssl=context if tls == "tls" else None)
        )
        port.append(server.sockets[0].getsockname()[1])
        started.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()

    thread = threading.Thread(target=run, name="test-smtp", daemon=True)
    thread.start()
    assert started.wait(10), "the SMTP server did not start"
    try:
        yield port[0], mailbox
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def smtp_env(port: int, **extra: str) -> dict[str, str]:
    """Settings of a control plane that mails through the test server on ``port``."""
    return {
        "ORGPLANE_SMTP_HOST": "127.0.0.1",
        "ORGPLANE_SMTP_PORT": str(port),
        "ORGPLANE_SMTP_TLS": "none",
        "ORGPLANE_MAIL_FROM": "orgplane <noreply@example.com>",
        **extra,
    }


async def delivered(box: Mailbox, to: str, subject: str, count: int = 1) -> list[EmailMessage]:
    """The messages to ``to`` whose subject has ``subject``, once ``count`` have arrived."""
    from tests.support.wait import eventually

    def found() -> list[EmailMessage]:
        return [m for m in box.to(to) if subject in str(m["Subject"])]

    return await eventually(
        lambda: len(found()) >= count and found(), what=f"{count} {subject!r} to {to}", timeout=20
    )
