"""The feature-rules page over plain HTTP (no JavaScript): the rules in precedence order and
the explain form, for platform admins only."""

from __future__ import annotations

import html
import re
from typing import Any

from litestar.testing import AsyncTestClient

from tests.support.api import add_user, login
from tests.support.tokens import make_org
from tests.ui.forms import ui_login

Client = AsyncTestClient[Any]


def _row(text: str, key: str) -> str:
    found = re.search(rf'<tr id="explain-{key}">(.*?)</tr>', text, re.S)
    assert found, text
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", found.group(1)))).strip()


async def test_rules_in_precedence_order_and_the_explain_form(client: Client) -> None:
    await add_user(client, "root@example.com", admin=True)
    alice_id = await add_user(client, "alice@example.com")
    acme = await make_org(client, "acme", members={alice_id: "member"})
    await ui_login(client, "root@example.com")
    put = await client.put(
        "/api/v1/features/beta",
        headers=await login(client, "root@example.com"),
        json={"description": "Beta <search>", "exclusive_org_ids": [acme]},
    )
    assert put.status_code == 200, put.text

    rules = await client.get("/ui/features")
    assert rules.status_code == 200
    order = re.findall(r"<li><code>([a-z_]+)</code>", rules.text)
    assert order == [
        "disabled",
        "exclusive_user",
        "exclusive_org",
        "exclusive_others",
        "override",
        "entry_plans",
        "plan",
        "default",
    ]
    assert "Beta &lt;search&gt;" in rules.text  # escaped
    assert re.search(r"beta.*?<td>no</td>\s*<td>none</td>\s*<td>acme</td>", rules.text, re.S)
    assert 'href="/ui/features"' in rules.text  # in the platform admin's navigation

    explained = await client.get(
        "/ui/features", params={"user": "alice@example.com", "org": "acme"}
    )
    assert explained.status_code == 200
    assert (
        _row(explained.text, "beta") == "beta on exclusive_org exclusive to the organization acme"
    )
    assert _row(explained.text, "chat") == "chat on plan the free plan includes it"
    assert "for alice@example.com (member)" in re.sub(r"\s+", " ", explained.text)
    assert 'value="alice@example.com"' in explained.text

    missing = await client.get("/ui/features", params={"org": "nope"})
    assert missing.status_code == 404
    assert "No such organization." in missing.text
    assert 'id="explanation"' not in missing.text
    no_org = await client.get("/ui/features", params={"user": "alice@example.com"})
    assert no_org.status_code == 400


async def test_only_platform_admins_see_the_page(client: Client) -> None:
    await add_user(client, "ann@example.com")
    await ui_login(client, "ann@example.com")
    answer = await client.get("/ui/features", params={"org": "acme"})
    assert answer.status_code == 403
    assert "Only platform admins" in answer.text
    assert 'href="/ui/features"' not in (await client.get("/ui/orgs")).text
