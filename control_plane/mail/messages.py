"""Messages from templates: plain text and HTML, one folder per locale.

``templates/<locale>/<kind>.subject.txt``, ``<kind>.txt`` and ``<kind>.html`` make a message;
a locale without a folder falls back to ``en``. HTML is autoescaped, text is not (it is never
rendered as markup).
"""

from __future__ import annotations

import email.utils
import re
from email.message import EmailMessage
from functools import cache
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES: Final = Path(__file__).with_name("templates")
DEFAULT_LOCALE: Final = "en"
KINDS: Final = frozenset(
    {"invite", "password_reset", "email_verification", "new_device", "org_deletion", "mfa_reset"}
)


@cache
def _environment(locale: str) -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES / locale),
        autoescape=select_autoescape(["html"], default_for_string=False, default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


_LOCALE: Final = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})?$")


def _locale(locale: str) -> str:
    return locale if _LOCALE.match(locale) and (TEMPLATES / locale).is_dir() else DEFAULT_LOCALE


def build_message(
    kind: str, *, sender: str, recipient: str, locale: str = DEFAULT_LOCALE, **context: Any
) -> EmailMessage:
    """The ``kind`` message to ``recipient``: text with an HTML alternative."""
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}")
    env = _environment(_locale(locale))
    context = {"locale": _locale(locale), **context}
    # One line whatever the context holds: a header never carries a line break.
    subject = " ".join(env.get_template(f"{kind}.subject.txt").render(context).split())
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain=_domain(sender))
    message.set_content(env.get_template(f"{kind}.txt").render(context))
    message.add_alternative(
        env.get_template(f"{kind}.html").render({**context, "subject": subject}), subtype="html"
    )
    return message


def _domain(address: str) -> str:
    _, addr = email.utils.parseaddr(address)
    return addr.rpartition("@")[2] or "localhost"
