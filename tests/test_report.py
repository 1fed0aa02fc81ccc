"""The validation report: summary JSON, figures and a self-contained static HTML viewer.

The demo writes the report; this module runs it once and checks the files, then opens the page
in headless Chromium (Debian ``chromium`` + ``chromium-driver``) to see that it loads without
console errors, that the viewer draws boxes over a loaded image, and that a screenshot is not
blank.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from rsgpt4v.demo import run_demo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    return run_demo(tmp_path_factory.mktemp("report") / "demo")


def test_demo_writes_the_report(demo) -> None:
    report = demo.validation.report
    assert report == demo.sample.parent / "report" / "index.html" and report.is_file()
    assert demo.validation.rejected == 0
    assert demo.validation.kept == demo.instructions.instructions


def test_summary_counts_sources_tasks_generators_and_classes(demo) -> None:
    summary = json.loads((demo.validation.report.parent / "summary.json").read_text())
    assert summary["instructions"] == summary["kept"] == demo.instructions.instructions
    per_task = {task: row["kept"] for task, row in summary["per_task"].items()}
    assert per_task == dict(demo.instructions.per_task)
    assert summary["per_source"] == {"dota": {"kept": summary["kept"], "rejected": 0}}
    assert summary["per_generator"] == {"rules": {"kept": summary["kept"], "rejected": 0}}
    assert sum(summary["object_classes"].values()) == demo.conversion.objects
    assert summary["records"] == demo.conversion.records
    assert summary["object_box_size_px"]["count"] == demo.conversion.objects
    assert summary["answer_length_words"]["min"] >= 1
    assert summary["rejection_reasons"] == {}
    assert summary["run"]["leakage_checked"] is True


def test_report_is_self_contained(demo) -> None:
    folder = demo.validation.report.parent
    page = demo.validation.report.read_text(encoding="utf-8")
    local = re.findall(r'(?:src|href)="([^"#:]+)"', page)
    assert {"data.js", "viewer.js", "report.css", "summary.json"} <= set(local)
    assert all((folder / ref).is_file() for ref in local)
    for name in ("tasks", "object_classes", "box_sizes", "answer_lengths"):
        with Image.open(folder / "plots" / f"{name}.png") as figure:
            assert figure.format == "PNG" and figure.width > 300
    data = (folder / "data.js").read_text(encoding="utf-8")
    payload = json.loads(data.removeprefix("window.RSGPT4V_REPORT = ").rstrip().rstrip(";"))
    samples = payload["samples"]
    assert len(samples) == 48
    assert all(s["src"] and (folder / s["src"]).is_file() for s in samples)
    assert "fetch(" not in (folder / "viewer.js").read_text(encoding="utf-8")


def test_rejected_instructions_come_first_in_the_viewer(demo, tmp_path: Path) -> None:
    from rsgpt4v.validate.run import ValidationOptions, validate_instructions

    items = [json.loads(line) for line in demo.instructions.output.read_text().splitlines()]
    items[5]["messages"][1]["content"] = "There are 77 planes and a helicopter."
    path = tmp_path / "instructions.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    summary = validate_instructions(
        path,
        demo.conversion.output,
        report_dir=tmp_path / "report",
        options=ValidationOptions(samples=4, leakage=False),
    )
    data = (tmp_path / "report" / "data.js").read_text(encoding="utf-8")
    payload = json.loads(data.removeprefix("window.RSGPT4V_REPORT = ").rstrip().rstrip(";"))
    first = payload["samples"][0]
    assert first["id"] == items[5]["id"] and first["rejections"]
    assert first["src"] is None  # no image root: the viewer draws on a blank canvas
    reasons = json.loads((tmp_path / "report" / "summary.json").read_text())["rejection_reasons"]
    assert set(reasons) == set(summary.reasons) and len(payload["samples"]) == 4


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None or not Path(CHROMEDRIVER).is_file():
        pytest.skip("chromium and chromium-driver are not installed (make system-deps)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.add_argument("--disable-dev-shm-usage")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _wait_for_image(driver) -> dict:
    from selenium.webdriver.support.ui import WebDriverWait

    script = (
        "const img = document.querySelector('#canvas img');"
        "return img && img.complete && img.naturalWidth > 0;"
    )
    WebDriverWait(driver, 10).until(lambda d: d.execute_script(script))
    return driver.execute_script(
        "const img = document.querySelector('#canvas img').getBoundingClientRect();"
        "const svg = document.querySelector('#canvas svg.boxes').getBoundingClientRect();"
        "const boxes = [...document.querySelectorAll('#canvas svg.boxes rect')]"
        "  .map(r => r.getBoundingClientRect()).filter(r => r.width > 0 && r.height > 0);"
        "return {img: [img.left, img.top, img.width, img.height],"
        "        svg: [svg.left, svg.top, svg.width, svg.height],"
        "        natural: document.querySelector('#canvas img').naturalWidth,"
        "        boxes: boxes.map(r => [r.left, r.top, r.width, r.height]),"
        "        regions: document.querySelectorAll('#canvas rect.region-box').length,"
        "        outlines: document.querySelectorAll('#canvas polygon.region-outline').length};"
    )


def test_report_page_shows_boxes_over_the_image_in_chromium(demo, browser) -> None:
    browser.get(demo.validation.report.as_uri())
    drawn = _wait_for_image(browser)
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
    assert drawn["natural"] > 0 and drawn["img"][2] > 100
    assert drawn["svg"] == pytest.approx(drawn["img"], abs=1)  # the overlay covers the image
    assert drawn["boxes"], "no box drawn over the image"
    left, top, width, height = drawn["img"]
    for x, y, w, h in drawn["boxes"]:
        assert left - 1 <= x and x + w <= left + width + 1
        assert top - 1 <= y and y + h <= top + height + 1
    # step to a sample with regions: their boxes are drawn as region rectangles
    for _ in range(len(browser.find_elements("css selector", "#sample-list li"))):
        if drawn["regions"]:
            break
        browser.find_element("id", "next").click()
        drawn = _wait_for_image(browser)
    assert drawn["regions"] > 0
    assert drawn["outlines"] == drawn["regions"]  # DOTA regions: each with its oriented outline
    messages = browser.find_elements("css selector", "#messages .message")
    assert len(messages) >= 2 and browser.find_elements("css selector", "#messages .ref")
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_report_screenshot_is_not_blank(demo, browser) -> None:
    browser.get(demo.validation.report.as_uri())
    _wait_for_image(browser)
    shot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    colours = shot.getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 50
    viewer = browser.find_element("id", "canvas")
    crop = Image.open(io.BytesIO(viewer.screenshot_as_png)).convert("RGB")
    assert crop.width > 100 and len(crop.getcolors(maxcolors=1 << 20) or range(51)) > 50


def test_viewer_filters_samples_by_task(demo, browser) -> None:
    from selenium.webdriver.support.ui import Select

    browser.get(demo.validation.report.as_uri())
    _wait_for_image(browser)
    Select(browser.find_element("id", "filter")).select_by_value("task:counting")
    listed = [li.text for li in browser.find_elements("css selector", "#sample-list li")]
    assert listed and all("#counting-" in text for text in listed)
    assert "task counting" in browser.find_element("id", "meta").text
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


@pytest.fixture(scope="module")
def broken_report(demo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo validated again with two images cut in half and one missing, under a folder
    whose name is markup (a note names the file: its text must stay text)."""
    from rsgpt4v.validate.run import ValidationOptions, validate_instructions

    root = tmp_path_factory.mktemp("broken") / 'a<b>&"c'
    shutil.copytree(demo.sample, root)
    for name in ("scene_00.tif", "scene_01.tif"):
        data = (root / "images" / name).read_bytes()
        (root / "images" / name).write_bytes(data[: len(data) // 2])
    (root / "images" / "scene_02.tif").unlink()
    summary = validate_instructions(
        demo.instructions.output,
        demo.conversion.output,
        report_dir=root.parent / "report",
        options=ValidationOptions(image_root=root, leakage=False),
    )
    return summary.report


def test_an_unreadable_image_shows_a_note_naming_it(broken_report: Path) -> None:
    import xml.etree.ElementTree as ElementTree

    folder = broken_report.parent
    data = (folder / "data.js").read_text(encoding="utf-8")
    payload = json.loads(data.removeprefix("window.RSGPT4V_REPORT = ").rstrip().rstrip(";"))
    sources = {s["image"]: s["src"] for s in payload["samples"]}
    sizes = {s["image"]: s["image_size"] for s in payload["samples"]}
    assert {image for image, src in sources.items() if src.endswith(".svg")} == {
        "images/scene_00.tif",
        "images/scene_01.tif",
        "images/scene_02.tif",
    }
    assert all((folder / src).is_file() for src in sources.values())
    root = folder.parent / 'a<b>&"c'
    for image, reason in (
        ("images/scene_00.tif", "image is truncated or corrupt"),
        ("images/scene_02.tif", "cannot read image"),
    ):
        text = (folder / sources[image]).read_text(encoding="utf-8")
        assert "<b>" not in text and "a&lt;b&gt;&amp;&quot;c" in text  # escaped, never markup
        note = ElementTree.fromstring(text)
        title = note.findtext("{http://www.w3.org/2000/svg}title")
        assert title.startswith(f"{root / image}: {reason}"), title
        # the image's size: the viewer draws the boxes over the note where they would be
        assert [int(note.get("width")), int(note.get("height"))] == sizes[image]


def test_a_note_is_shown_in_place_of_an_unreadable_image_in_chromium(
    broken_report: Path, browser
) -> None:
    note = "return document.querySelector('#canvas img').src.endsWith('.svg')"
    browser.get(broken_report.as_uri())
    for _ in range(len(browser.find_elements("css selector", "#sample-list li"))):
        if browser.execute_script(note):
            break
        browser.find_element("id", "next").click()
    assert browser.execute_script(note)
    drawn = _wait_for_image(browser)  # the note loads as the image does, boxes over it
    assert drawn["natural"] > 0 and drawn["svg"] == pytest.approx(drawn["img"], abs=1)
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_validate_prints_and_reports_phrasing_variety(tmp_path: Path) -> None:
    """The CLI summary and the report's summary.json both carry the variety figures."""
    from typer.testing import CliRunner

    from rsgpt4v.cli import app
    from rsgpt4v.instruct.rules import rule_instructions
    from rsgpt4v.schema import JsonlWriter
    from tests.test_rules_local import SCENE

    records, instructions = tmp_path / "records.jsonl", tmp_path / "instructions.jsonl"
    records.write_text(SCENE.model_dump_json() + "\n")
    with JsonlWriter(instructions) as writer:
        for item in rule_instructions(SCENE, ["detailed_description", "multi_turn"], 0):
            writer.write(item)
    report = tmp_path / "report"
    result = CliRunner().invoke(
        app, ["validate", str(instructions), "--records", str(records), "--report", str(report)]
    )
    assert result.exit_code == 0, result.output
    assert "phrasing variety per 1,000 instructions" in result.output
    variety = json.loads((report / "summary.json").read_text())["phrasing_variety"]
    assert variety["instructions"] == 3 and variety["answer_templates"] >= 4
    assert variety["vocabulary_per_1000"] == round(variety["vocabulary"] * 1000 / 3, 1)
