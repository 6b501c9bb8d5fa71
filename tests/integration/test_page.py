"""The web page in a real headless browser (Debian's Chromium driven by Playwright) against a
real `stylestream api` process: upload an image, results appear, a filter narrows them; words
find products; "like this, but..." on a result changes it by words; "complete the look" shows
what goes with a product, per role, and reports clicks on it."""

from __future__ import annotations

import io
import json
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

from bench.processes import Process
from deploy.local.process import free_port
from processors.products import ProductProcessor
from search.outfits import WORN_WITH
from stylestream.cli import main
from tests.events import photo, upsert
from tests.integration.conftest import Stack, wait_for

pytestmark = pytest.mark.services
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def page_stack(make_stack: Callable[..., Stack], processor: ProductProcessor) -> Stack:
    stack = make_stack(milvus_index="FLAT", api_port=str(free_port()))
    stack.write(processor, [upsert(f"w{i:03d}", 1, i) for i in range(80)])
    return stack


@pytest.fixture(scope="module")
def api_url(page_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    stack = page_stack
    port = int(stack.overrides["api_port"])
    proc = Process(["api"], tmp_path_factory.mktemp("api") / "api.log", stack.env())
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.running(), proc.tail()
        try:
            status: int = urllib.request.urlopen(f"{url}/readyz", timeout=2).status
            return status == 200
        except OSError:
            return False

    wait_for(ready, timeout=60)
    yield url
    proc.stop(20)


@pytest.fixture
def page(api_url: str) -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(api_url)
        yield page
        browser.close()


def query_file(tmp_path: Path, i: int) -> Path:
    path = tmp_path / f"query-{i}.png"
    buf = io.BytesIO()
    Image.fromarray(photo(i)[0]).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


def test_upload_shows_results_and_a_filter_narrows_them(page: Page, tmp_path: Path) -> None:
    expect(page.locator("select[name=category] option[value=bag]")).to_have_count(1)
    page.set_input_files("[data-testid=file]", str(query_file(tmp_path, 3)))
    cards = page.locator("[data-testid=result]")
    expect(cards.first).to_be_visible()
    assert cards.count() == 24
    first = cards.first
    assert first.get_attribute("data-product-id") == "w003"  # the query's own photo
    expect(first.locator("img")).to_have_js_property("complete", True)
    assert first.locator("img").evaluate("img => img.naturalWidth") >= 64  # thumbnail loaded

    categories_before = {cards.nth(i).get_attribute("data-category") for i in range(cards.count())}
    assert len(categories_before) > 1
    page.select_option("[data-testid=category]", "bag")
    expect(page.locator("[data-testid=status]")).to_contain_text("results for query-3.png")
    expect(cards.first).to_have_attribute("data-category", "bag")
    narrowed = {cards.nth(i).get_attribute("data-category") for i in range(cards.count())}
    assert narrowed == {"bag"}
    assert 0 < cards.count() < 24


def test_clicking_a_result_shows_more_like_it(page: Page, tmp_path: Path) -> None:
    page.set_input_files("[data-testid=file]", str(query_file(tmp_path, 8)))
    cards = page.locator("[data-testid=result]")
    expect(cards.first).to_be_visible()
    target = cards.nth(1).get_attribute("data-product-id")
    cards.nth(1).click()
    expect(page.locator("[data-testid=status]")).to_contain_text(f"like {target}")
    ids = [cards.nth(i).get_attribute("data-product-id") for i in range(cards.count())]
    assert target not in ids and len(ids) > 0


def test_a_bad_file_shows_the_api_error(page: Page, tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image")
    page.set_input_files("[data-testid=file]", str(bad))
    error = page.locator("[data-testid=error]")
    expect(error).to_be_visible()
    expect(error).to_contain_text("cannot decode image")


def test_attribute_checkboxes_narrow_results_any_of_within_a_group(
    page: Page, tmp_path: Path
) -> None:
    footwear = page.locator("[data-testid='attr-department.footwear']")
    expect(footwear).to_have_count(1)
    page.set_input_files("[data-testid=file]", str(query_file(tmp_path, 3)))
    cards = page.locator("[data-testid=result]")
    expect(cards).to_have_count(24)
    other = "[data-testid=result]:not([data-attributes~='department.{}'])"
    assert page.locator(other.format("footwear")).count() > 0
    footwear.check()
    expect(page.locator(other.format("footwear"))).to_have_count(0)
    only_footwear = cards.count()
    assert only_footwear > 0
    page.locator("[data-testid='attr-department.bags']").check()  # same group: any of
    bags = page.locator("[data-testid=result][data-attributes~='department.bags']")
    expect(bags.first).to_be_visible()
    tags = [cards.nth(i).get_attribute("data-attributes") or "" for i in range(cards.count())]
    assert all({"department.footwear", "department.bags"} & set(t.split()) for t in tags)
    assert len(tags) >= only_footwear


def test_the_search_box_finds_products_by_words_and_keeps_the_filters(page: Page) -> None:
    page.fill("[data-testid=text-query]", "ankle boots")
    page.press("[data-testid=text-query]", "Enter")
    expect(page.locator("[data-testid=status]")).to_contain_text("for “ankle boots”")
    cards = page.locator("[data-testid=result]")
    expect(cards.first).to_be_visible()
    assert {cards.nth(i).get_attribute("data-category") for i in range(cards.count())} == {
        "ankle-boot"
    }
    page.locator("input[name=explain]").check()  # a filter change searches the words again
    expect(cards.first.locator("[data-testid=why]")).to_contain_text("ankle boots")
    page.fill("[data-testid=text-query]", "bag sneaker -bag")  # "-word" excludes it
    page.click("[data-testid=text-submit]")
    expect(page.locator("[data-testid=status]")).to_contain_text("for “bag sneaker -bag”")
    expect(cards.first).to_have_attribute("data-category", "sneaker")
    assert {cards.nth(i).get_attribute("data-category") for i in range(cards.count())} == {
        "sneaker"
    }


def test_like_this_but_changes_a_result_by_words(page: Page, page_stack: Stack) -> None:
    result = CliRunner().invoke(main, ["train", "modify", "--small"], env=page_stack.env())
    assert result.exit_code == 0, result.output
    version = json.loads(result.output[result.output.index("{") :])["registered"]
    page.fill("[data-testid=text-query]", "dress")
    page.press("[data-testid=text-query]", "Enter")
    cards = page.locator("[data-testid=result]")
    expect(page.locator("[data-testid=status]")).to_contain_text("for “dress”")
    page.locator("input[name=explain]").check()
    expect(cards.first.locator("[data-testid=why]")).to_contain_text("dress")
    reference = cards.first.get_attribute("data-product-id")
    cards.first.locator("[data-testid=but-text]").fill("in red")  # typing is not a card click
    cards.first.locator("[data-testid=but-submit]").click()
    status = page.locator("[data-testid=status]")
    expect(status).to_contain_text(f"like {reference}, but “in red”")
    expect(status).to_contain_text(f"modify:{version}")
    expect(cards.first.locator("[data-testid=why]")).to_contain_text("attributes and colours")
    ids = [cards.nth(i).get_attribute("data-product-id") for i in range(cards.count())]
    assert ids and reference not in ids
    # the filters hold for the changed query too
    page.select_option("[data-testid=category]", "bag")
    expect(status).to_contain_text(f"like {reference}, but “in red”")
    expect(cards.first).to_have_attribute("data-category", "bag")
    assert {cards.nth(i).get_attribute("data-category") for i in range(cards.count())} == {"bag"}


def test_complete_the_look_shows_under_a_product_and_reports_clicks(
    page: Page, page_stack: Stack, tmp_path: Path
) -> None:
    result = CliRunner().invoke(main, ["train", "outfits", "--small"], env=page_stack.env())
    assert result.exit_code == 0, result.output
    page.set_input_files("[data-testid=file]", str(query_file(tmp_path, 1)))
    cards = page.locator("[data-testid=result]")
    expect(cards.first).to_be_visible()
    anchor = cards.first.get_attribute("data-product-id")
    cards.first.locator("[data-testid=look-button]").click()  # not a card click
    look = page.locator("[data-testid=look]")
    expect(look).to_be_visible()
    expect(look.locator("h2")).to_contain_text(f"Complete the look: {anchor} (")
    role = look.locator("h2").inner_text().rsplit("(", 1)[1].rstrip(")")
    rows = look.locator("[data-testid=look-role]")
    expect(rows).to_have_count(len(WORN_WITH[role]))
    assert [rows.nth(i).get_attribute("data-role") for i in range(rows.count())] == list(
        WORN_WITH[role]
    )
    items = look.locator("[data-testid=look-item]")
    expect(items.first).to_be_visible()
    expect(items.first.locator("[data-testid=look-why]")).to_contain_text("goes with")
    chosen = items.first.get_attribute("data-product-id")
    with page.expect_response("**/v1/interactions") as reported:
        items.first.click()
    assert reported.value.status == 202  # an outfit signal for the miner
    status = page.locator("[data-testid=status]")
    expect(status).to_contain_text(f"like {chosen}")
    # a product asked for shows its own look under it
    expect(look.locator("h2")).to_contain_text(f"Complete the look: {chosen} (")
