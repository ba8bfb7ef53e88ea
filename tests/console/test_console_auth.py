"""Who may see and do what in the console: sessions, roles, CSRF, the audit log."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gateway import keys
from gateway.cli import main
from gateway.console import ROUTES, auth
from gateway.samples import phone, resident
from tests.console.town import CSRF, PASSWORD, csrf_of, heat_wave, sign_in

PAGE_ARGS = {"aid": "al_0000000000000000", "name": "someone"}


def concrete(path: str) -> str:
    return path.format(**PAGE_ARGS)


@pytest.mark.parametrize("method,path", [(r.method, r.path) for r in ROUTES
                                         if r.path not in ("/ops", "/ops/login", "/static/{name}")])
async def test_without_a_session_every_console_page_sends_you_to_sign_in(client, method, path):
    r = await client.request(method, concrete(path), allow_redirects=False)
    assert r.status == 303
    assert r.headers["Location"].startswith("/ops/login?next=")


async def test_a_forged_session_cookie_is_no_session(client):
    client.session.cookie_jar.update_cookies({auth.COOKIE: "made-up"})
    r = await client.get("/ops/alerts", allow_redirects=False)
    assert r.status == 303


async def test_signing_in_sets_a_fresh_http_only_strict_cookie(town, client):
    await town.operator("mina", "viewer")
    form = await client.get("/ops/login")
    before = form.cookies[auth.COOKIE].value
    r = await sign_in(client, "mina")
    assert r.status == 303 and r.headers["Location"] == "/ops/alerts"
    cookie = r.cookies[auth.COOKIE]
    assert cookie.value != before  # no session fixation
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/ops"
    page = await client.get("/ops/alerts")
    assert page.status == 200 and "mina (viewer)" in await page.text()
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")


async def test_a_wrong_password_is_refused_and_audited(town, client):
    await town.operator("mina", "viewer")
    r = await sign_in(client, "mina", "not the password")
    assert r.status == 401
    assert "do not match" in await r.text()
    entries = await auth.audit_log(town.redis)
    assert entries[0]["action"] == "sign-in failed" and entries[0]["who"] == "mina"


async def test_many_wrong_passwords_lock_the_name_for_a_while(town, client):
    await town.operator("mina", "viewer")
    for _ in range(auth.MAX_FAILURES):
        assert (await sign_in(client, "mina", "guess")).status == 401
    assert (await sign_in(client, "mina")).status == 401
    await town.redis.delete(keys.login_failures("mina"))
    assert (await sign_in(client, "mina")).status == 303


async def test_sign_in_never_redirects_off_site(town, client):
    await town.operator("mina", "viewer")
    form = await (await client.get("/ops/login?next=https://evil.example/")).text()
    assert 'name="next" value="/ops/alerts"' in form
    r = await client.post("/ops/login", data={"csrf": CSRF.search(form).group(1), "name": "mina",
                                               "password": PASSWORD, "next": "//evil.example/"},
                          allow_redirects=False)
    assert r.headers["Location"] == "/ops/alerts"


async def test_a_login_form_without_its_token_is_refused(town, client):
    await town.operator("mina", "admin")
    await client.get("/ops/login")
    r = await client.post("/ops/login", data={"csrf": "forged", "name": "mina", "password": PASSWORD},
                          allow_redirects=False)
    assert r.status == 403


async def test_a_viewer_sees_no_actions_and_can_take_none(town, client):
    await town.add(resident("r1", phone("+821055500001"), needs=["lives_alone"]))
    town.sms.script["r1"] = "failed"
    town.voice.script["r1"] = "failed"
    aid = await town.post_alert(heat_wave({"residents": ["r1"]}))
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")
    page = await (await client.get(f"/ops/alerts/{aid}")).text()
    assert "Cancel this alert" not in page and "Reopen the unreachable" not in page and "Visit done" not in page
    csrf = await csrf_of(client)
    for action, form in (("cancel", {}), ("reopen", {"channel": "sms", "again": "1"}), ("welfare", {"resident": "r1"})):
        r = await client.post(f"/ops/alerts/{aid}/{action}", data={"csrf": csrf, **form}, allow_redirects=False)
        assert r.status == 403, action
    assert (await town.redis.hget(keys.alert(aid), "status")) == b"active"
    assert not await town.redis.exists(keys.welfare(aid))
    assert (await town.delivery(aid, "r1"))["s"] == "unreachable"


async def test_a_forged_csrf_token_is_refused_and_changes_nothing(town, client):
    await town.add(resident("r1", phone("+821055500001")))
    aid = await town.post_alert(heat_wave({"residents": ["r1"]}))
    await town.operator("jun", "operator")
    await sign_in(client, "jun")
    for token in ("forged", ""):
        r = await client.post(f"/ops/alerts/{aid}/cancel", data={"csrf": token}, allow_redirects=False)
        assert r.status == 403
        assert "Form expired" in await r.text()
    assert (await town.redis.hget(keys.alert(aid), "status")) == b"active"
    assert not [e for e in await auth.audit_log(town.redis) if e["action"] == "cancel alert"]


async def test_an_operator_cancels_and_the_audit_log_says_who(town, client):
    await town.add(resident("r1", phone("+821055500001")))
    aid = await town.post_alert(heat_wave({"residents": ["r1"]}))
    await town.operator("jun", "operator")
    await sign_in(client, "jun")
    r = await client.post(f"/ops/alerts/{aid}/cancel", data={"csrf": await csrf_of(client)})
    assert "Alert cancelled" in await r.text()
    await town.dispatch.settle()
    assert (await town.redis.hget(keys.alert(aid), "status")) == b"cancelled"
    assert (await town.delivery(aid, "r1"))["s"] == "cancelled"
    entry = next(e for e in await auth.audit_log(town.redis) if e["action"] == "cancel alert")
    assert entry["who"] == "jun" and entry["target"] == aid
    audit = await (await client.get("/ops/audit")).text()
    assert "cancel alert" in audit and aid in audit


async def test_only_an_admin_manages_operators(town, client):
    await town.operator("jun", "operator")
    await sign_in(client, "jun")
    assert (await client.get("/ops/operators")).status == 403
    r = await client.post("/ops/operators", data={"csrf": await csrf_of(client), "name": "eve", "role": "admin",
                                                  "password": PASSWORD}, allow_redirects=False)
    assert r.status == 403
    assert not await town.redis.exists(keys.operator("eve"))


async def test_an_admin_creates_an_operator_and_disabling_ends_their_session(town, client):
    await town.operator("root", "admin")
    await sign_in(client, "root")
    csrf = await csrf_of(client, "/ops/operators")
    r = await client.post("/ops/operators", data={"csrf": csrf, "name": "sora", "role": "viewer", "password": PASSWORD})
    assert "Operator sora created as viewer" in await r.text()
    r = await client.post("/ops/operators/sora", data={"csrf": csrf, "role": "operator"})
    assert "set role operator" in await r.text()
    sid = (await auth.open_session(town.redis, auth.Operator("sora", "operator"))).id
    assert await auth.load_session(town.redis, sid)
    await client.post("/ops/operators/sora", data={"csrf": csrf, "disabled": "1"})
    assert await auth.load_session(town.redis, sid) is None
    actions = [e["action"] for e in await auth.audit_log(town.redis)]
    assert {"create operator", "set role", "disable operator"} <= set(actions)


async def test_signing_out_ends_the_session(town, client):
    await town.operator("mina", "viewer")
    await sign_in(client, "mina")
    r = await client.post("/ops/logout", data={"csrf": await csrf_of(client)}, allow_redirects=False)
    assert r.status == 303
    sid = r.cookies[auth.COOKIE].value if auth.COOKIE in r.cookies else ""
    assert sid == ""
    assert (await client.get("/ops/alerts", allow_redirects=False)).status == 303


def test_the_cli_creates_an_operator_with_a_password_from_stdin(redis_url, tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWAY_REDIS_URL", redis_url)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["operator", "create", "cli-admin", "--role", "admin", "--password-stdin"],
                                input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    again = CliRunner().invoke(main, ["operator", "create", "cli-admin", "--password-stdin"], input=PASSWORD + "\n")
    assert again.exit_code == 1
    short = CliRunner().invoke(main, ["operator", "create", "cli-two", "--password-stdin"], input="short\n")
    assert short.exit_code == 1
