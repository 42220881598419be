"""report.html as a person sees it: real runs (two shots done, one failing in its engine, one
rejected by the manifest check) are reported, the output folder is moved elsewhere, and the page
is opened in a real headless Chromium (Debian's `chromium`, driven by playwright). The test reads
the rendered DOM: every shot with its status and failing stage, the header, links that resolve
after the move, the status filter and column sorting, and keeps a screenshot."""
from __future__ import annotations

import re
import shutil
import socket
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import cv2
import pytest

from flows.nightly_batch import nightly_batch
from flows.report import read_report
from flows.report_html import THUMB_BOX
from manifests.loader import write_manifest
from tasks.options import RunOptions
from testkit.flows import PLUGIN, tiny_rows

# Offline and quiet: no sandbox (root in CI), no GPU, no update or field-trial traffic.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"]
# A plate name that is also markup: the page must show it as text, never run or render it.
HOSTILE = "<img src=x onerror=alert(1)>.mkv"


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:  # CI installs it (scripts/install.sh): a missing browser is a failure
        pytest.fail("Debian's chromium is not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def batch_report(batch_env, tiny_shots, tmp_path):
    """The report of two real runs into one output root, the folder then moved away from where
    it was written. Run 1: two shots done (one through the gate), one rejected by the manifest
    check; run 2: a shot whose engine fails in pass 1 (its own run: one batch mixing engines
    would evict the first engine's actor under its running calls)."""
    dirs = tiny_shots(4)
    rows = tiny_rows(dirs, passes="1")
    rows[0]["passes"] = "2"
    rows[2]["engine"] = "test-fails"
    rows[3]["plate_uri"] = str(tmp_path / HOSTILE)
    common = dict(output_root=str(tmp_path / "out"), cache=str(tmp_path / "cache"),
                  plugins=[PLUGIN])
    for name, part in (("first", [rows[0], rows[1], rows[3]]), ("second", [rows[2]])):
        manifest = tmp_path / f"{name}.parquet"
        write_manifest(part, manifest)
        state = nightly_batch(options=RunOptions(manifest=str(manifest), **common),
                              return_state=True)
        assert state.is_failed()
    moved = tmp_path / "served" / "nightly"
    moved.parent.mkdir()
    shutil.move(tmp_path / "out", moved)
    return moved, {r["shot_id"]: r for r in read_report(moved)}, manifest


def failed_stage_shot(failed: dict, stage: str) -> str:
    (shot,) = [s for s, r in failed.items() if r["failed_stage"] == stage]
    return shot


def _local(url: str) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == "file", url
    return Path(unquote(parsed.path))


def _heading(page, text: str):
    return page.locator("#shots thead th").filter(has_text=re.compile(f"^{re.escape(text)}$"))


def _shots_in_order(page) -> list[str]:
    return page.locator("#shots tbody tr").evaluate_all("rs => rs.map(r => r.dataset.shot)")


def test_report_page_in_chromium(browser, batch_report, tmp_path):
    out, report, manifest = batch_report
    assert sorted(r["status"] for r in report.values()) == ["failed", "failed", "ok", "ok"]
    requests, dialogs = [], []
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    page.on("request", lambda req: requests.append(req.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    today = datetime.now().astimezone().strftime("%Y-%m-%d")
    page.goto((out / "report.html").as_uri())

    # Every shot, once, with the status, failing stage and error the report holds.
    assert sorted(_shots_in_order(page)) == sorted(report)
    for tr in page.locator("#shots tbody tr").all():
        r = report[tr.get_attribute("data-shot")]
        assert tr.locator(".status").inner_text() == r["status"]
        assert tr.locator(".failed-stage").inner_text() == (r["failed_stage"] or "")
        assert tr.locator(".error").inner_text() == (r["error"] or "")
    failed = {s: r for s, r in report.items() if r["status"] == "failed"}
    assert {r["failed_stage"] for r in failed.values()} == {"pass1", "manifest"}
    # The markup in the missing plate's name is text on the page: no element, no script ran.
    assert any(HOSTILE in r["error"] for r in failed.values())
    assert page.locator("img[src=x]").count() == 0 and dialogs == []

    # The header: counts, manifest, host, date, and each failure with its stage.
    header = page.locator("header").inner_text()
    assert "2 of 4 shots ok" in header and str(manifest) in header
    assert socket.gethostname() in header and today in header
    second_run = report[failed_stage_shot(failed, "pass1")]["flow_run_id"]
    assert f"{second_run} (this run) \u00b7 1 shot" in header
    failures = page.locator("#failures li").all_inner_texts()
    assert len(failures) == 2
    for shot, r in failed.items():
        assert any(t.startswith(f"{shot}: failed at {r['failed_stage']}") for t in failures)

    # Thumbnails: one decoded picture per delivered shot, within the box, shown at its own
    # size (neither blown up nor shipped bigger than shown).
    thumbs = page.locator("img.thumb")
    assert thumbs.count() == 2
    for img in thumbs.all():
        w, h = img.evaluate("i => i.complete ? [i.naturalWidth, i.naturalHeight] : null")
        box = img.bounding_box()
        assert [box["width"], box["height"]] == [w, h]
        assert 0 < w <= THUMB_BOX[0] and 0 < h <= THUMB_BOX[1]
        sheet = _local(img.evaluate("i => i.closest('a').href"))  # the full contact sheet
        sh, sw = cv2.imread(str(sheet)).shape[:2]
        assert abs(w / h - sw / sh) < 2 / min(w, h)  # its aspect, up to rounding to pixels

    _check_links(page, out, report)
    _check_filter(page, report)
    _check_sorting(page, report)
    # One file: nothing but the page itself (and its embedded pictures) was loaded.
    assert requests and all(u.startswith(("file:", "data:")) for u in requests), requests
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.close()


def _check_links(page, out: Path, report: dict) -> None:
    """Each link resolves: media to files that exist (relative links: the folder was moved),
    anchors to their row, flow runs to the run's URL in the Prefect UI."""
    links = page.locator("a[href]").evaluate_all(
        "as => as.map(a => [a.getAttribute('href'), a.href, a.className])")
    run_urls = {r["flow_run_url"] for r in report.values()}
    media = 0
    for raw, resolved, cls in links:
        if raw.startswith("#"):
            assert page.locator(raw).count() == 1, raw
        elif cls == "flow-run":
            assert resolved in run_urls and resolved.startswith("http"), resolved
        else:
            path = _local(resolved)
            assert path.exists() and path.is_relative_to(out), resolved
            media += 1
    for r in report.values():  # the delivered shots link result, matte, review and folder
        if r["status"] == "ok":
            row = page.locator(f"#shots tbody tr[data-shot='{r['shot_id']}'] td.media a")
            assert row.all_inner_texts() == ["result", "matte", "review", "folder"]
    assert media == 2 * 5  # 4 media links and the contact sheet per delivered shot
    for r in report.values():
        assert r["flow_run_url"] and r["flow_run_id"] in r["flow_run_url"]
    runs = {r["flow_run_id"] for r in report.values()}
    assert len(runs) == 2  # the merged report holds both runs' shots
    assert page.locator("a.flow-run").count() == len(runs) + len(report)  # header + each row


def _check_filter(page, report: dict) -> None:
    ok_box = page.locator("#filter input[value=ok]")
    ok_box.uncheck()
    visible = [tr.get_attribute("data-shot")
               for tr in page.locator("#shots tbody tr").all() if tr.is_visible()]
    assert sorted(visible) == sorted(s for s, r in report.items() if r["status"] != "ok")
    assert page.locator("#shown-count").inner_text() == "2"
    ok_box.check()
    assert all(tr.is_visible() for tr in page.locator("#shots tbody tr").all())


def _check_sorting(page, report: dict) -> None:
    heading = _heading(page, "shot")
    heading.click()
    assert _shots_in_order(page) == sorted(report, key=str.lower)
    heading.click()
    assert _shots_in_order(page) == sorted(report, key=str.lower, reverse=True)
    _heading(page, "total s").click()
    totals = [report[s]["seconds_total"] for s in _shots_in_order(page)]
    assert totals == sorted(totals)
    _heading(page, "row").click()
    rows = [report[s]["row"] for s in _shots_in_order(page)]
    assert rows == sorted(rows)
