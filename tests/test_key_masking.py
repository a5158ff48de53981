"""An Alertmanager integration's key is in its URL: no log line may carry it."""

from __future__ import annotations

import io
import logging

import pytest

from controlplane.key_masking import MASKED, MaskIntegrationKeys, mask
from tests.factories import make_integration


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "Bad Request: /api/v1/integrations/alertmanager/amk_Ab-9_x/",
            f"Bad Request: /api/v1/integrations/alertmanager/{MASKED}/",
        ),
        ("two: amk_a and amk_b.", f"two: {MASKED} and {MASKED}."),
        ("Not Found: /ping/jpk_Zx-9_a/payroll/start", "Not Found: /ping/jpk_…/payroll/start"),
        ("no key here", "no key here"),
    ],
)
def test_keys_are_masked(text, masked):
    assert mask(text) == masked


@pytest.mark.django_db
def test_a_refused_posting_writes_its_warning_without_the_key(client, org):
    _, key = make_integration(org)
    [handler] = [
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, MaskIntegrationKeys) for f in h.filters)
    ]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        response = client.post(
            f"/api/v1/integrations/alertmanager/{key}/",
            data=b"not json",
            content_type="application/json",
        )
    finally:
        handler.setStream(previous)

    assert response.status_code == 400
    log = stream.getvalue()
    assert "/api/v1/integrations/alertmanager/" in log, "Django's request warning was written"
    assert key.removeprefix("amk_") not in log
    assert MASKED in log
