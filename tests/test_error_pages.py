"""The project's own 404 and 500 pages carry the trace and request ids."""

import re

import pytest
from django.urls import include, path


def explode(request):
    raise RuntimeError("boom")


urlpatterns = [
    path("explode/", explode),
    path("", include("controlplane.urls")),
]
handler404 = "controlplane.views.not_found"
handler500 = "controlplane.views.server_error"

HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.mark.urls("tests.test_error_pages")
@pytest.mark.django_db
def test_500_page_carries_trace_and_request_ids(client):
    client.raise_request_exception = False

    response = client.get("/explode/")

    assert response.status_code == 500
    assert HEX32.fullmatch(response["X-Trace-Id"])
    assert response["X-Request-Id"]
    assert b"X-Request-Id" in response.content


@pytest.mark.django_db
def test_404_page_and_api_404_carry_trace_ids(client):
    page = client.get("/no-such-page/")
    api = client.get("/api/v1/no-such-endpoint/")

    assert page.status_code == api.status_code == 404
    assert HEX32.fullmatch(page["X-Trace-Id"])
    assert HEX32.fullmatch(api["X-Trace-Id"])
    assert page["X-Trace-Id"] != api["X-Trace-Id"]
    assert api.json()["detail"].startswith("No API endpoint")


@pytest.mark.django_db
def test_admin_login_page_carries_trace_id(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert HEX32.fullmatch(response["X-Trace-Id"])


def test_static_files_are_served_with_debug_off(client, settings):
    settings.DEBUG = False

    response = client.get("/static/css/app.css")

    assert response.status_code == 200
    assert b"--accent" in b"".join(response.streaming_content)
