"""The import wizard in a real browser (Debian's chromium via Playwright): upload to undo."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from azorus_connect.admin import accounts
from azorus_connect.store.db import utcnow

from .conftest import people, table_counts

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ADMIN = ("imogen", "import-password-1")
FILE = (
    "\ufeffStudent ID,Forename,Surname,DOB,Fair attended,Comments\r\n"
    '0000000001,Zoë,Lee,36950,LDN24,=HYPERLINK("http://evil.example")\r\n'
    "0000000002,Bob,Ray,31/02/2001,MAN24,\r\n"
    "0000000003,Cy,Do,01-JAN-1999,,+44 7700 900123\r\n"
)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    from tests.ui.browser import ConsoleLog

    console = ConsoleLog()
    context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    context.set_default_timeout(15_000)
    page = console.watch(context.new_page())
    yield page
    context.close()
    assert console.errors == [], console.errors


def test_upload_map_dry_run_run_download_and_undo(page, csv_hub, live_hub, tmp_path):
    with csv_hub.store.write() as conn:
        accounts.create_user(conn, *ADMIN, "admin", utcnow())
    base = live_hub(csv_hub)
    upload = tmp_path / "open-day.csv"
    upload.write_bytes(FILE.encode("utf-8"))

    page.goto(base + "/admin/imports")
    page.fill("#username", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/imports")
    assert page.locator("nav a", has_text="Imports").count() == 1

    page.set_input_files("#file", str(upload))
    page.click("#upload")
    page.wait_for_url("**/admin/imports/uploads/*")
    assert page.locator("h1").inner_text() == "Map the columns of open-day.csv"
    column = page.locator("#columns tr[data-column='Student ID'] select")
    assert column.input_value() == "id:mst"
    assert page.locator("#columns tr[data-column='DOB'] select").input_value() == "date_of_birth"
    assert page.locator("#columns tr[data-column='Comments'] select").input_value() == "-"
    page.select_option("#columns tr[data-column='Comments'] select", "custom:notes")
    page.fill("#save_as", "Open day")
    before = table_counts(csv_hub)
    page.click("#dry-run")

    page.wait_for_selector("#run-status .finished", timeout=45_000)
    assert page.locator("#count-new").inner_text() == "2"
    assert page.locator("#count-invalid").inner_text() == "1"
    assert "nothing was written" in page.locator(".flash-info").inner_text()
    assert "'31/02/2001' is not a real date" in page.locator("#row-table").inner_text()
    assert table_counts(csv_hub) == before

    page.click("#confirm")
    page.wait_for_selector("#run-status .finished", timeout=45_000)
    assert page.locator("h1").inner_text().startswith("Import run")
    assert sorted(people(csv_hub)) == ["0000000001", "0000000003"]
    assert people(csv_hub)["0000000001"]["first_name"] == "Zoë"
    assert people(csv_hub)["0000000001"]["custom"]["notes"] == '=HYPERLINK("http://evil.example")'

    with page.expect_download() as info:
        page.click("#errors-link")
    report = tmp_path / "errors.csv"
    info.value.save_as(report)
    lines = report.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "row,Student ID,Forename,Surname,DOB,Fair attended,Comments,reason"
    assert lines[1].startswith("3,0000000002,Bob,Ray,31/02/2001")

    page.click("#undo")
    page.wait_for_selector("#undo-report")
    assert "removed 2 person" in " ".join(page.locator("#undo-report").inner_text().split())
    assert people(csv_hub) == {}

    page.goto(base + "/admin/imports")
    assert "Open day" in page.locator("#prof-h + ul").inner_text()
