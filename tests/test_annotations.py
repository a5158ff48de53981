"""The pure half of the annotations (controlplane/annotations.py): times, titles, tags,
which silences may cover a subject, and the order and limit of the answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane import annotations as ann

T0 = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
ALERT = ann.AlertFacts(
    id=7,
    organization="acme",
    rule_key="api.5xx",
    severity="critical",
    service="checkout",
    slo="",
    labels={"instance": "web-1", "job": "payroll-export"},
    summary="5xx above 2 %",
    is_test=False,
    url="https://cp.example/alerts/7/",
)


def no_viewer(trace_id: str) -> str:
    return ""


def viewer(trace_id: str) -> str:
    return f"https://tempo.example/{trace_id}" if trace_id else ""


@pytest.mark.parametrize(
    ("moment", "milliseconds"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), 0),
        (T0, 1774747800000),
        (T0 + timedelta(microseconds=999), 1774747800000),  # truncated, never rounded up
        (T0 + timedelta(milliseconds=1), 1774747800001),
        (datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), -1),
    ],
)
def test_unix_milliseconds_are_exact(moment, milliseconds):
    assert ann.unix_ms(moment) == milliseconds
    assert ann.from_unix_ms(milliseconds) == moment.replace(
        microsecond=moment.microsecond // 1000 * 1000
    )


def moment(event: str, seconds: int = 0, actor: str = "", note: str = "", trace: str = ""):
    return ann.AlertMoment(
        id=seconds,
        at=T0 + timedelta(seconds=seconds),
        event=event,
        actor=actor,
        note=note,
        trace_id=trace,
        alert=ALERT,
    )


@pytest.mark.parametrize(
    ("row", "title", "text"),
    [
        (
            moment("opened"),
            "api.5xx opened (critical)",
            '5xx above 2 %\ninstance="web-1", job="payroll-export"',
        ),
        (
            moment("acknowledged", actor="dana", note="on it"),
            "api.5xx acknowledged by dana",
            "5xx above 2 %\non it",
        ),
        (moment("resolved"), "api.5xx resolved", "5xx above 2 %"),
    ],
)
def test_alert_moments(row, title, text):
    annotation = ann.of_moment(row, no_viewer)

    assert (annotation["title"], annotation["text"]) == (title, text)
    assert annotation["tags"] == [
        "kind:alert",
        f"event:{row.event}",
        "organization:acme",
        "rule:api.5xx",
        "severity:critical",
        "service:checkout",
        "job:payroll-export",
    ]
    assert annotation["time"] == annotation["timeEnd"] == 1774747800000


def test_a_test_alert_says_so_in_its_tags():
    test_alert = ann.AlertFacts(**{**ALERT.__dict__, "is_test": True, "service": ""})
    row = ann.AlertMoment(1, T0, "opened", "", "", "", test_alert)

    tags = ann.of_moment(row, no_viewer)["tags"]

    assert "test" in tags
    assert not any(tag.startswith("service:") for tag in tags)


def test_the_trace_is_linked_when_there_is_one():
    assert ann.of_moment(moment("opened", trace="ab" * 16), viewer)["trace_url"] == (
        "https://tempo.example/" + "ab" * 16
    )
    assert ann.of_moment(moment("opened"), viewer)["trace_url"] == ""


def delivery(outcome: str, seconds: int = 0, attempts: int = 1, error: str = ""):
    return ann.Delivery(
        id=seconds,
        at=T0 + timedelta(seconds=seconds),
        outcome=outcome,
        channel="ops-slack",
        channel_kind="slack",
        message="trigger",
        attempts=attempts,
        error=error,
        trace_id="",
        alert=ALERT,
    )


def test_deliveries():
    sent = ann.of_delivery(delivery(ann.SENT, error="stale"), no_viewer)
    dead = ann.of_delivery(delivery(ann.GIVEN_UP, attempts=5, error="503"), no_viewer)

    assert (sent["title"], sent["text"]) == (
        "api.5xx: trigger sent to ops-slack (slack)",
        "5xx above 2 %\n1 attempt",
    )
    assert (dead["title"], dead["text"]) == (
        "api.5xx: trigger to ops-slack (slack) given up",
        "5xx above 2 %\n5 attempts\n503",
    )
    assert sent["tags"][:4] == [
        "kind:notification",
        "event:sent",
        "channel_kind:slack",
        "message:trigger",
    ]


def window(matchers, start=0, hours=1):
    return ann.Window(
        id=3,
        organization="acme",
        starts_at=T0 + timedelta(seconds=start),
        ends_at=T0 + timedelta(seconds=start, hours=hours),
        comment="upgrade",
        matchers=matchers,
        url="https://cp.example/admin/alerting/silence/3/change/",
    )


def test_a_window_is_a_band_tagged_with_its_equality_matchers():
    annotation = ann.of_window(
        window(
            [
                {"name": "rule", "op": "=", "value": "api.5xx"},
                {"name": "service", "op": "!=", "value": "search"},
                {"name": "slo", "value": "checkout"},  # op defaults to =
            ]
        )
    )

    assert annotation["timeEnd"] - annotation["time"] == 3_600_000
    assert annotation["title"] == "Silence: rule=api.5xx, service!=search, slo=checkout"
    assert annotation["tags"] == [
        "kind:silence",
        "event:created",
        "organization:acme",
        "rule:api.5xx",
        "slo:checkout",
    ]


RULE_IS = {"name": "rule", "op": "=", "value": "api.5xx"}
SERVICE_RE = {"name": "service", "op": "=~", "value": "check.*"}
INSTANCE = {"name": "instance", "op": "=", "value": "web-1"}


@pytest.mark.parametrize(
    ("matchers", "wanted", "covers"),
    [
        ([RULE_IS], {}, True),
        ([RULE_IS], {"rule": ["api.5xx"]}, True),
        ([RULE_IS], {"rule": ["api.latency"]}, False),
        ([RULE_IS], {"rule": ["api.latency", "api.5xx"]}, True),
        ([RULE_IS], {"service": ["search"]}, True),  # says nothing of services
        ([SERVICE_RE], {"service": ["checkout"]}, True),
        ([SERVICE_RE], {"service": ["search"]}, False),
        ([RULE_IS, SERVICE_RE], {"rule": ["api.5xx"], "service": ["search"]}, False),
        ([INSTANCE], {"rule": ["api.5xx"], "job": ["payroll"]}, True),  # cannot tell
        ([{"name": "job", "op": "!=", "value": "payroll"}], {"job": ["payroll"]}, False),
        ([{"name": "slo", "op": "=", "value": "a"}], {"slo": ["b"]}, False),
        ([{"name": "bad name", "op": "=", "value": "x"}], {"rule": ["api.5xx"]}, True),
    ],
)
def test_which_silences_may_cover_a_subject(matchers, wanted, covers):
    assert ann.could_cover(matchers, wanted) is covers


def test_assembled_in_time_order_cause_before_consequence():
    found = ann.assemble(
        [moment("resolved", 5), moment("opened", 0), moment("acknowledged", 0)],
        [delivery(ann.SENT, 0)],
        [window([RULE_IS], start=0)],
        no_viewer,
        limit=10,
    )

    assert [(a["time"] - ann.unix_ms(T0), a["kind"], a["event"]) for a in found] == [
        (0, "silence", "created"),
        (0, "alert", "opened"),
        (0, "notification", "sent"),
        (0, "alert", "acknowledged"),
        (5000, "alert", "resolved"),
    ]


def test_past_the_limit_the_latest_are_kept():
    found = ann.assemble([moment("opened", s) for s in range(10)], [], [], no_viewer, limit=3)

    assert [a["time"] - ann.unix_ms(T0) for a in found] == [7000, 8000, 9000]
