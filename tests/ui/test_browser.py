"""The admin UI in a real browser (Debian's chromium via Playwright): sign-in, CSRF, finding a request
by MST code, retrying a parked message, a viewer refused, and every page free of console errors."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from azorus_connect.store.schema import outbox
from azorus_connect.worker import Worker

from .conftest import ADMIN, VIEWER, seed

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def sign_in(page, base, user, *, start="/admin/"):
    page.goto(base + start)
    expect(page.locator("h1")).to_have_text("Sign in")
    page.fill("#username", user[0])
    page.fill("#password", user[1])
    page.press("#password", "Enter")  # keyboard only


def park_one(ui_hub, receiver):
    receiver.script = [400]
    Worker(ui_hub).drain("crm")
    with ui_hub.store.read() as conn:
        return conn.execute(select(outbox.c.id).where(outbox.c.status == "parked")).scalar_one()


def test_sign_in_csrf_rejection_and_sign_out(page, ui_hub, live_hub, console):
    base = live_hub(ui_hub)
    sign_in(page, base, (ADMIN[0], "not the password"))
    expect(page.locator(".flash-error")).to_contain_text("not right")
    console.allow("status of 401")
    page.fill("#password", ADMIN[1])
    page.press("#password", "Enter")
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator(".who")).to_contain_text("ada")

    # A form whose CSRF token is not this session's is refused, and nothing happens.
    page.evaluate("document.querySelector('form.signout input[name=csrf_token]').value = 'forged'")
    page.click("form.signout button")
    expect(page.locator("body")).to_contain_text("security token")
    console.allow("status of 403")
    page.goto(base + "/admin/")
    expect(page.locator("h1")).to_have_text("Dashboard")

    page.click("form.signout button")
    expect(page.locator("h1")).to_have_text("Sign in")
    expect(page.locator(".flash-info")).to_contain_text("signed out")
    page.goto(base + "/admin/people")
    expect(page.locator("h1")).to_have_text("Sign in")


def test_find_a_request_by_mst_code_and_open_its_payload(page, ui_hub, live_hub, client, config_secret):
    first = seed(client, config_secret)
    base = live_hub(ui_hub)
    sign_in(page, base, VIEWER)
    page.click("nav >> text=Request log")
    expect(page.locator("#request-log tbody tr")).to_have_count(2)
    page.fill("input[name=identifier]", "0000123")
    page.press("input[name=identifier]", "Enter")
    rows = page.locator("#request-log tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("mst:0000123")
    rows.first.locator(f"a:has-text('{first['request_id']}')").click()
    expect(page.locator("h1")).to_contain_text(first["request_id"])
    expect(page.locator("#payload")).to_contain_text('"MST": "0000123"')
    expect(page.locator("#headers")).to_contain_text("x-echo-token")
    expect(page.locator("#headers")).not_to_contain_text(config_secret)
    expect(page.locator("#response")).to_contain_text('"outcome": "created"')
    page.locator("#records-touched a").first.click()
    expect(page.locator("h1")).to_contain_text("Jane Doe")
    expect(page.locator("#identifiers")).to_contain_text("0000123")
    expect(page.locator("#applications")).to_contain_text("Unconditional firm")


def test_admin_retries_a_parked_message(page, ui_hub, live_hub, client, config_secret, receiver):
    seed(client, config_secret)
    parked = park_one(ui_hub, receiver)
    base = live_hub(ui_hub)
    sign_in(page, base, ADMIN)
    crm = page.locator("tbody tr", has=page.locator("a", has_text="crm"))
    expect(crm.locator("a[href*='status=parked']")).to_have_text("1")
    crm.locator("a[href*='status=parked']").click()
    row = page.locator(f"#msg-{parked}")
    expect(row).to_contain_text("parked")
    expect(row).to_contain_text("400")
    row.locator("button:has-text('Retry')").click()
    expect(page.locator(".flash-ok")).to_contain_text(f"Message {parked} is back in the queue")
    assert Worker(ui_hub).drain("crm").sent >= 1
    page.goto(base + "/admin/outbox?status=sent")
    expect(page.locator(f"#msg-{parked}")).to_contain_text("sent")


def test_viewer_is_refused_an_admin_action(page, ui_hub, live_hub, client, config_secret, receiver, console):
    seed(client, config_secret)
    parked = park_one(ui_hub, receiver)
    base = live_hub(ui_hub)
    sign_in(page, base, VIEWER)
    page.goto(base + "/admin/outbox")
    retry = page.locator(f"#msg-{parked} button:has-text('Retry')")
    expect(retry).to_be_disabled()
    # Enabling the button in the page does not help: the server refuses.
    retry.evaluate("b => { b.disabled = false; b.form.submit(); }")
    expect(page.locator("body")).to_contain_text("admin role")
    console.allow("status of 403")
    with ui_hub.store.read() as conn:
        assert conn.execute(select(outbox.c.status).where(outbox.c.id == parked)).scalar_one() == "parked"
    response = page.goto(base + "/admin/tokens")
    assert response is not None and response.status == 403
    console.allow("status of 403")


def test_every_page_renders_without_console_errors(page, ui_hub, live_hub, client, config_secret, console):
    first = seed(client, config_secret)
    base = live_hub(ui_hub)
    sign_in(page, base, ADMIN)
    for label in (
        "Dashboard",
        "Request log",
        "Outbox",
        "People",
        "Reference lists",
        "Connections",
        "Imports",
        "API tokens",
    ):
        page.click(f"nav >> text={label}")
        expect(page.locator("h1")).to_have_text(label)
    page.goto(f"{base}/admin/requests/{first['request_id']}")
    expect(page.locator("#payload")).to_be_visible()
    page.goto(base + "/admin/people")
    page.fill("input[name=q]", "Smith")
    page.press("input[name=q]", "Enter")
    page.locator("#people a:has-text('John Smith')").click()
    expect(page.locator("h1")).to_contain_text("John Smith")
    page.goto(base + "/admin/reference-lists")
    page.click("text=Application status")
    expect(page.locator("#reference-values")).to_contain_text("Unconditional firm")
    page.goto(base + "/admin/connections")
    page.locator("#conn-crm button:has-text('Check connection')").click()
    expect(page.locator("#conn-crm .flash-ok")).to_contain_text("OK")
    page.goto(base + "/admin/tokens")
    page.fill("input[name=name]", "portal")
    page.press("input[name=name]", "Enter")
    expect(page.locator("#new-token")).to_have_text(re.compile(r"^azc_"))
    assert console.errors == []
