"""The API documentation pages render from the project alone: no CDN, no font service."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from tests.browser import chromium
from tests.csp import directives
from tests.waiting import DEADLINE

DOCS_PAGES = ["/api/v1/docs/", "/api/v1/redoc/"]


class _Resources(HTMLParser):
    """Every address a page makes the browser fetch: scripts, styles, icons, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for attribute in ("src", "href"):
            if tag in {"script", "link", "img", "iframe"} and values.get(attribute):
                self.urls.append(values[attribute])


def _resources(html: str) -> list[str]:
    parser = _Resources()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize("path", DOCS_PAGES)
def test_a_docs_page_names_no_other_host_and_its_assets_are_served(client, path):
    response = client.get(path)

    assert response.status_code == 200
    html = response.content.decode()
    urls = _resources(html)
    assert urls, "the page loads its viewer from somewhere"
    for url in urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("", ""), f"{url} is not same-origin"
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert b"".join(asset.streaming_content if asset.streaming else [asset.content]), url
    assert re.findall(r"https?://[\w.-]+", html) == [], "the page names another host"


@pytest.mark.parametrize("img_hosts", [[], ["https://images.example.com"]])
def test_redoc_may_not_fetch_its_attribution_logo_from_redocly(client, settings, img_hosts):
    # ReDoc's bundle names https://cdn.redoc.ly/redoc/logo-mini.svg; only own images
    # load, and those of the hosts runbooks may show.
    settings.CSP_IMG_HOSTS = img_hosts

    policy = directives(client.get("/api/v1/redoc/")["Content-Security-Policy"])

    assert policy["img-src"] == ["'self'", "data:", *img_hosts]
    assert policy["script-src"] == ["'self'"]


def test_the_docs_pages_run_no_inline_script(client):
    # The site's policy refuses inline script; a page that relied on one would be blank.
    for path in DOCS_PAGES:
        html = client.get(path).content.decode()
        scripts = re.findall(r"<script\b[^>]*>", html)
        assert scripts, path
        assert all(" src=" in tag for tag in scripts), (path, scripts)


def test_swagger_ui_does_not_ask_the_online_validator(client):
    # Left to its default, Swagger UI shows a badge from validator.swagger.io on any
    # host but localhost, telling that service the schema's address. The settings are
    # in the initialiser the page loads (?script=), not in the page.
    script = client.get("/api/v1/docs/", {"script": ""})

    assert script["Content-Type"].startswith("application/javascript")
    assert '"validatorUrl": "none"' in script.content.decode()


@pytest.mark.integration
def test_the_docs_render_their_operations_with_no_network(transactional_db, live_server):

    loopback = urlsplit(live_server.url).hostname
    blocked: list[str] = []
    failed: list[str] = []

    def offline(route) -> None:
        # What a machine without internet does to any request that leaves it.
        if urlsplit(route.request.url).hostname in {loopback, "127.0.0.1", "localhost"}:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    with chromium() as browser:
        page = browser.new_page()
        # Swagger UI's bundle is large; a loaded machine takes its time to run it.
        page.set_default_timeout(DEADLINE * 1000)
        page.route("**/*", offline)
        page.on(
            "response",
            lambda response: failed.append(response.url) if response.status >= 400 else None,
        )

        page.goto(f"{live_server.url}/api/v1/docs/")
        page.wait_for_selector(".opblock", state="attached")
        swagger_operations = page.locator(".opblock").count()
        swagger_paths = page.locator(".opblock-summary-path").all_inner_texts()

        page.goto(f"{live_server.url}/api/v1/redoc/")
        page.wait_for_selector("[data-section-id*='operation/']", state="attached")
        redoc_operations = page.locator("[data-section-id*='operation/']").count()

    assert swagger_operations > 5
    assert any(path.startswith("/api/v1/services/") for path in swagger_paths), swagger_paths
    assert redoc_operations > 5
    assert blocked == [], "the docs asked for something beyond this machine"
    assert failed == []
