"""report.html as a person sees it: real runs (two shots done, one failing in its engine, one
rejected by the manifest check) are reported, the output folder is moved elsewhere, and the page
is opened in a real headless Chromium (Debian's `chromium`, driven by playwright). The test reads
the rendered DOM: every shot with its status and failing stage, the header, links that resolve
after the move, the status filter and column sorting, and keeps a screenshot."""
from __future__ import annotations

import base64
import re
import shutil
import socket
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows import report
from flows.nightly_batch import nightly_batch
from flows.report import REPORT, read_report
from flows.report_html import THUMB_BOX, render_html
from manifests.loader import write_manifest
from tasks.graph import stage_names
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
        assert sheet.is_file() and sheet.is_relative_to(out), sheet
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


# --- the template on odd data (no batch; the DOM of the same browser where it matters) ----------
MARKUP = "<script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\"> & 'q' \"dq\""


def _open(browser, html: str, folder: Path):
    """The page as Chromium renders it from `folder`/report.html; fails on any dialog."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.html").write_text(html, encoding="utf-8")
    page = browser.new_page()
    page.on("dialog", lambda d: pytest.fail(f"the page ran a script: {d.message}"))
    page.goto((folder / "report.html").as_uri())
    return page


def test_markup_in_every_field_stays_text(browser, tmp_path):
    text_columns = ["shot_id", "status", "error", "failed_stage", "engine", "model_id",
                    "mask_path", "gate_decision", "display_note", "skipped", "host",
                    "flow_run_id"]
    row = {c: f"{c} {MARKUP}" for c in text_columns} | {
        "tags": [MARKUP], "notes": [MARKUP], "cache_hits": [MARKUP], "result_uri": MARKUP,
        "flow_run_url": f"javascript:alert(1)//{MARKUP}", "thumbnail": MARKUP}
    page = _open(browser, render_html([row], manifest=MARKUP, title=MARKUP),
                 tmp_path / "out")
    assert page.evaluate("window.pwned") is None
    assert page.locator("script").count() == 1  # the page's own
    assert page.locator("#shots img, header img").count() == 0
    assert page.title() == MARKUP
    tr = page.locator("#shots tbody tr")
    assert tr.get_attribute("data-shot") == row["shot_id"]
    assert tr.get_attribute("data-status") == row["status"]
    assert tr.locator(".error").inner_text() == row["error"]
    assert tr.locator(".failed-stage").inner_text() == row["failed_stage"]
    assert tr.locator(".display-note").inner_text() == row["display_note"]
    assert MARKUP in page.locator("header").inner_text()  # manifest and failure list
    # Nothing becomes a script link: the run URL is not http(s), the media are file names.
    hrefs = page.locator("a[href]").evaluate_all("as => as.map(a => a.href)")
    assert hrefs and all(h.startswith("file:") for h in hrefs), hrefs
    assert page.locator("a.flow-run").count() == 0
    page.close()


def test_missing_columns_nans_and_arrays(browser, tmp_path):
    nan = float("nan")
    rows = [{"shot_id": "a", "status": "ok", "seconds_total": 10.0},
            {"shot_id": "b", "status": "ok", "seconds_total": 9.0, "row": nan, "tags": None,
             "notes": np.array(["from an array"]), "cache_hits": np.array([], dtype=object),
             "gate_score": nan, "gate_decision": nan, "seconds_decode": nan},
            {"shot_id": None, "status": None, "error": nan, "seconds_total": None},
            {"shot_id": "c", "status": "cancelled", "seconds_total": 100.0},
            {}]
    page = _open(browser, render_html(rows), tmp_path)
    assert _shots_in_order(page) == ["a", "b", "?", "c", "?"]
    assert page.locator("#shots tbody .status").all_inner_texts() == [
        "ok", "ok", "unknown", "cancelled", "unknown"]
    assert "from an array" in page.locator("#shots").inner_text()
    assert "nan" not in page.locator("#shots tbody").inner_text().lower()
    # No stage has a figure: no stage columns.
    heads = page.locator("#shots thead th").all_inner_texts()
    assert not [h for h in heads if h.endswith(" s") and h[:-2] in stage_names()]
    assert "display note" not in heads  # nor an empty display-note column
    assert "2 of 5 shots ok" in page.locator("header").inner_text()
    # Numbers sort as numbers (9 < 10 < 100), empty cells last either way.
    _heading(page, "total s").click()
    assert _shots_in_order(page)[:3] == ["b", "a", "c"]
    _heading(page, "total s").click()
    assert _shots_in_order(page)[:3] == ["c", "a", "b"]
    # Filtering by a status the table has (here "unknown") and back.
    page.locator("#filter input[value=unknown]").uncheck()
    assert page.locator("#shown-count").inner_text() == "3"
    page.close()


def test_a_report_from_an_older_schema_renders(tmp_path):
    """An output root whose report.parquet predates most columns: the merged page shows the
    old row beside the new one, with what it has."""
    out = tmp_path / "out"
    out.mkdir()
    old = pa.table({"shot_id": ["old"], "status": ["ok"], "error": [None],
                    "seconds_decode": [3.5], "result_uri": [str(out / "old" / "r.mkv")]})
    pq.write_table(old, out / REPORT)
    new = {"shot_id": "new", "row": 0, "status": "failed", "failed_stage": "decode",
           "error": "plate unreadable", "seconds_decode": 0.25, "compute_decode": 0.25}
    report.write(report.frame([new]), str(out), "run-2", manifest="m.parquet")
    page = (out / "report.html").read_text()
    assert 'data-shot="old"' in page and 'data-shot="new"' in page
    assert ">3.50<" in page and 'href="old/r.mkv"' in page
    assert "1 of 2 shots ok" in page and "m.parquet" in page


def test_links_relative_under_the_root_absolute_elsewhere(tmp_path):
    root = tmp_path / "out"
    row = {"shot_id": "s", "status": "ok", "result_uri": str(root / "s" / "a #1?.mkv"),
           "matte_uri": f"file://{root}/s/matte.mkv", "review_uri": "s3://bucket/s/review.mp4",
           "output_dir": str(tmp_path / "elsewhere" / "s"),
           "flow_run_id": "abc", "flow_run_url": "http://ui/runs/flow-run/abc"}
    page = render_html([row], base=str(root))
    assert 'href="s/a%20%231%3F.mkv"' in page  # relative, '#' and '?' kept in the name
    assert 'href="s/matte.mkv"' in page
    assert 'href="s3://bucket/s/review.mp4"' in page
    assert f'href="{(tmp_path / "elsewhere" / "s").as_uri()}"' in page
    assert 'href="http://ui/runs/flow-run/abc"' in page
    # A report written to an object store links local files by file:// URL.
    assert f'href="{(root / "s" / "matte.mkv").as_uri()}"' in render_html([row], base="s3://b/o")


def test_thumbnail_fits_the_box_and_bad_pictures_are_skipped(tmp_path):
    sheet = tmp_path / "sheet.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(sheet), rng.integers(0, 255, (1300, 1440, 3), dtype=np.uint8))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    rows = [{"shot_id": "good", "status": "ok", "thumbnail": str(sheet)},
            {"shot_id": "broken", "status": "ok", "thumbnail": str(broken)},
            {"shot_id": "gone", "status": "ok", "thumbnail": str(tmp_path / "gone.png")},
            {"shot_id": "remote", "status": "ok", "thumbnail": "s3://b/sheet.png"}]
    page = render_html(rows, base=str(tmp_path))
    (data,) = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)
    img = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
    h, w = img.shape[:2]
    assert h == THUMB_BOX[1] and abs(w - 1440 * THUMB_BOX[1] / 1300) <= 1  # height-bound box
    assert len(data) * 3 / 4 < 100_000  # light: a noise picture, the worst case for JPEG
    assert page.count('>contact sheet</a>') == 3  # the others are links, not pictures
