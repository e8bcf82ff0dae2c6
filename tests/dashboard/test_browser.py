"""The dashboard page in a real browser (Debian's headless Chromium): every number it shows is the
number its JSON endpoint holds, the eight reports are there, and a screenshot is kept as a test
artefact (``artifacts/dashboard.png``)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from devtools.account_reports import account_summary
from tests.dashboard.conftest import LiveRun


class _Numbers(HTMLParser):
    """Every ``a.num`` of the page: (endpoint, path, text shown)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []
        self.titles: list[str] = []
        self._open: dict[str, str] | None = None
        self._in_h3 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "a" and values.get("class") == "num":
            self._open = values | {"text": ""}
        self._in_h3 = tag == "h3"

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data
        if self._in_h3:
            self.titles.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.found.append((self._open["data-json"], self._open["data-path"], self._open["text"]))
            self._open = None
        if tag == "h3":
            self._in_h3 = False


def _at(document: Any, path: str) -> Any:
    for part in path.split("/"):
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def _shown(value: Any, path: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.1%}" if "rate" in path else f"{value:g}"
    return str(value)


def test_every_number_on_the_page_is_its_json_endpoints(live_run: LiveRun) -> None:
    page = _Numbers()
    page.feed(live_run.dom)
    assert len(page.found) >= 40, f"only {len(page.found)} numbers on the page"
    wrong = [
        f"{endpoint}#{path}: page {text!r}, JSON {_shown(_at(live_run.json[endpoint], path), path)!r}"
        for endpoint, path, text in page.found
        if _shown(_at(live_run.json[endpoint], path), path) != text
    ]
    assert not wrong, "\n".join(wrong)
    shown = {(endpoint, path) for endpoint, path, _ in page.found}
    for path in ("contacts", "deals", "products", "writer_backlog", "timers_pending", "hubspot_calls"):
        assert any(p == path for _, p in shown), path
    for n in range(1, 9):
        assert any(title.startswith(f"{n}. ") for title in page.titles), f"report {n} is missing"


def test_the_numbers_shown_are_the_sandbox_accounts(live_run: LiveRun) -> None:
    page = _Numbers()
    page.feed(live_run.dom)
    account = account_summary(live_run.account)
    summary = {path: text for endpoint, path, text in page.found if endpoint == "/api/summary.json"}
    assert summary["contacts"] == str(account["contacts"])
    assert summary["products"] == str(account["products"])
    for stage, n in account["deals_by_stage"].items():
        assert summary[f"deals_by_stage/{stage}"] == str(n)


def test_a_screenshot_is_kept(live_run: LiveRun) -> None:
    assert live_run.screenshot is not None
    data = live_run.screenshot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000
