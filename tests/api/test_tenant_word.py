"""The platform's word for an org (``ORGPLANE_TENANT_*``) set to "Workspace"/"Workspaces": the UI's
pages, an invite email, the CLI's output and the OpenAPI descriptions say it, never
"Organization" nor the prose word "org"; API paths and fields keep ``org``.

One control plane served over HTTP (the CLI runs in a thread against it), mailing through a real
SMTP server in the test process.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.users.service import create_user
from tests.support.api import PASSWORD
from tests.support.cli import run_cli
from tests.support.live import serve_control_plane
from tests.support.smtp import Mailbox, delivered, smtp_env, text_of
from tests.ui.forms import ui_login

WORDS = {"ORGPLANE_TENANT_SINGULAR": "Workspace", "ORGPLANE_TENANT_PLURAL": "Workspaces"}
#: "org" or "orgs" as a word of prose: not an identifier such as org_id, org:read, org.create,
#: /orgs or org-unavailable, and not "orgplane".
PROSE_ORG = re.compile(r"(?<![\w/{.:-])[Oo]rgs?(?![\w/}_]|[.:-]\w)")
CODE = re.compile(r"`+[^`]*`+")


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


def visible_text(page: str) -> str:
    """What a reader sees of an HTML page: no scripts, code samples, tags or attributes."""
    page = re.sub(r"(?is)<(script|style|code|pre)\b.*?</\1>", " ", page)
    return html.unescape(re.sub(r"(?s)<[^>]*>", " ", page))


def assert_says_workspace(text: str, where: str) -> None:
    assert re.search(r"\b[Ww]orkspaces?\b", text), f"{where} does not say workspace:\n{text}"
    assert "organization" not in text.lower(), f"{where} says organization:\n{text}"
    found = PROSE_ORG.findall(text)
    assert not found, f"{where} says org: {found}\n{text}"


@pytest.fixture
async def platform(make_settings: Any, unused_tcp_port: int, smtp: tuple[int, Mailbox]) -> Any:
    port = unused_tcp_port
    settings = make_settings(**smtp_env(smtp[0]), **WORDS, ORGPLANE_PORT=str(port))
    async with (
        serve_control_plane(settings, port) as app,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
    ):
        async with app.state.runtime.sessions() as db:
            await create_user(
                db, email="ops@example.com", password=PASSWORD, is_platform_admin=True
            )
            await db.commit()
        yield http, smtp[1]


async def cli(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = "") -> tuple[int, str]:
    """``orgplane argv``: exit code, stdout and stderr together."""
    code, out, err = await run_cli(capsys, *argv, stdin=stdin)
    return code, out + err


async def test_workspace_everywhere_a_person_reads(
    platform: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    http, box = platform
    token = (
        await http.post(
            "/api/v1/auth/login", json={"email": "ops@example.com", "password": PASSWORD}
        )
    ).json()["access_token"]
    admin = {"Authorization": f"Bearer {token}"}
    made = await http.post("/api/v1/orgs", headers=admin, json={"name": "Acme", "slug": "acme"})
    assert made.status_code == 202, made.text  # the API's paths keep `orgs`

    # The words, for clients.
    words = (await http.get("/api/v1/platform/words")).json()
    assert words == {
        "singular": "Workspace",
        "plural": "Workspaces",
        "placeholder": "Workspace name",
        "column": "Workspace",
    }

    # An email.
    invited = await http.post(
        "/api/v1/orgs/acme/invites", headers=admin, json={"email": "ann@example.com"}
    )
    assert invited.status_code == 201, invited.text
    (mail,) = await delivered(box, "ann@example.com", "invited")
    assert "invited you to join the workspace Acme" in text_of(mail)
    assert_says_workspace(text_of(mail), "the invite email")
    html_part = mail.get_body(preferencelist=("html",))
    assert html_part is not None
    assert_says_workspace(visible_text(str(html_part.get_content())), "the invite email's HTML")  # type: ignore[attr-defined]

    # The UI's pages.
    await ui_login(http, "ops@example.com")
    pages = ("/ui/", "/ui/orgs", "/ui/orgs/new", "/ui/orgs/acme", "/ui/orgs/acme/members")
    for path in (*pages, "/ui/admin/audit", "/ui/admin/users", "/ui/invites/accept"):
        page = await http.get(path)
        assert page.status_code == 200, (path, page.text)
        assert_says_workspace(visible_text(page.text), path)
    form = (await http.get("/ui/orgs/new")).text
    assert 'placeholder="Workspace name"' in form
    assert "<h1>Create a workspace</h1>" in form
    assert '<th scope="col">Workspace</th>' in (await http.get("/ui/")).text

    # The OpenAPI document's descriptions.
    document = (await http.get("/api/schema/openapi.json")).json()
    described = [
        CODE.sub("", op["description"])
        for item in document["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and op.get("description")
    ]
    assert len(described) > 50
    prose = " ".join([document["info"]["description"], *described])
    assert_says_workspace(CODE.sub("", prose), "the OpenAPI descriptions")
    assert "/api/v1/orgs" in document["paths"]  # paths unchanged

    # The CLI's output.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    url = str(http.base_url).rstrip("/")
    login = await cli(
        capsys,
        *("login", "--url", url, "--email", "ops@example.com", "--password-stdin"),
        stdin=PASSWORD + "\n",
    )
    assert login[0] == 0, login[1]
    outputs = [
        await cli(capsys, "whoami"),
        await cli(capsys, "runner", "list"),
        await cli(capsys, "switch", "nope"),
        await cli(capsys, "tokens", "create", "ci"),
    ]
    assert outputs[0] == (
        0,
        f"ops@example.com (platform admin) at {url}\ncurrent workspace: (none)\n",
    )
    assert outputs[1] == (1, "orgplane: no current workspace; run `orgplane switch SLUG` first\n")
    assert outputs[2] == (1, "orgplane: unknown workspace or no access: nope\n")
    assert outputs[3] == (
        1,
        "orgplane: name the workspaces with --org SLUG (repeatable), or give --all-orgs\n",
    )
    for _, output in outputs:
        assert "organization" not in output.lower()


@pytest.mark.parametrize("word", ["", "<b>Team</b>", "Te`am", "Line\nbreak", "x" * 41])
def test_a_word_that_is_not_plain_text_is_refused(make_settings: Any, word: str) -> None:
    with pytest.raises(ValueError, match="tenant_singular"):
        make_settings(ORGPLANE_TENANT_SINGULAR=word)
