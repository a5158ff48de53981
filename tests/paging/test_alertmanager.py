"""Alertmanager's webhook payload read and judged: paging/alertmanager.py's rules as tables.

No database, no clock: every case is bytes in and a Payload (or the refused field) out,
or a payload, what we hold and a time in and the actions out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from controlplane.paging import alertmanager as am
from controlplane.paging.alertmanager import (
    Held,
    Leave,
    Malformed,
    Open,
    OpenAlert,
    Resolve,
    Shown,
    TooLarge,
    Update,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
T2 = datetime(2026, 3, 1, 11, 30, tzinfo=UTC)


def alert(**fields) -> dict:
    """One alert as Alertmanager 0.25 writes it; `fields` replace or add keys (None drops)."""
    base = {
        "status": "firing",
        "labels": {"alertname": "HighLatency", "severity": "critical", "job": "api"},
        "annotations": {"summary": "p99 over 2s"},
        "startsAt": "2026-03-01T11:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": "3a5f1c0e9b2d4a61",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def payload(*alerts: dict, **fields) -> dict:
    base = {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "controlplane",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts) if alerts else [alert()],
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def body(data) -> bytes:
    return json.dumps(data).encode()


# --- parsing ---------------------------------------------------------------------------


def test_a_payload_as_alertmanager_writes_it():
    parsed = am.parse(body(payload()))

    [only] = parsed.alerts
    assert only.status == "firing"
    assert only.fingerprint == "3a5f1c0e9b2d4a61"
    assert dict(only.labels) == {"alertname": "HighLatency", "severity": "critical", "job": "api"}
    assert dict(only.annotations) == {"summary": "p99 over 2s"}
    # Nanoseconds are cut to microseconds; the zero time is "not ended".
    assert only.starts_at == datetime(2026, 3, 1, 11, 0, 0, 123456, tzinfo=UTC)
    assert only.ends_at is None
    assert only.generator_url == "http://prometheus:9090/graph?g0.expr=up"
    assert parsed.truncated_alerts == 0


def test_unknown_keys_are_accepted_at_every_level():
    data = payload(
        alert(notification_reason="new", extra={"deep": [1, 2]}),
        routeLabels={"team": "a"},
        somethingNew=[{"x": None}],
    )

    assert len(am.parse(body(data)).alerts) == 1


def test_optional_keys_may_be_left_out():
    data = {"version": "4", "alerts": [alert(annotations=None, endsAt=None, generatorURL=None)]}

    [only] = am.parse(body(data)).alerts
    assert dict(only.annotations) == {}
    assert only.ends_at is None
    assert only.generator_url == ""


def test_an_empty_alert_list_is_a_payload():
    assert am.parse(body(payload(alerts=[]))).alerts == ()


@pytest.mark.parametrize(
    ("raw", "field", "says"),
    [
        (b"", "body", "empty"),
        (b"version=4", "body", "not JSON"),
        (b"\xff\xfe{}", "body", "not UTF-8"),
        (b'{"version": "4", "alerts": [], "x": NaN}', "body", "NaN is not a JSON number"),
        (b"[" * 100_000 + b"]" * 100_000, "body", "not JSON"),
        (body([payload()]), "body", "expected a JSON object"),
        (body("4"), "body", "expected a JSON object"),
        (body(payload(version=None)), "version", "missing"),
        (body(payload(version="3")), "version", 'expected "4"'),
        (body(payload(version=4)), "version", "got 4"),
        (body(payload(alerts=None)), "alerts", "missing"),
        (body(payload(alerts={"0": alert()})), "alerts", "expected a list of alerts"),
        (body(payload(alerts="[]")), "alerts", "expected a list of alerts"),
        (body(payload(truncatedAlerts=-1)), "truncatedAlerts", "expected a count"),
        (body(payload(truncatedAlerts=True)), "truncatedAlerts", "expected a count"),
        (body(payload(alerts=[7])), "alerts[0]", "expected an alert"),
        (body(payload(alert(), alert(status=None, fingerprint="b"))), "alerts[1].status",
         "missing"),
        (body(payload(alert(status="pending"))), "alerts[0].status", '"firing" or "resolved"'),
        (body(payload(alert(fingerprint=None))), "alerts[0].fingerprint", "missing"),
        (body(payload(alert(fingerprint=""))), "alerts[0].fingerprint", "1 to 40 letters"),
        (body(payload(alert(fingerprint="a/b"))), "alerts[0].fingerprint", "1 to 40 letters"),
        (body(payload(alert(fingerprint=12))), "alerts[0].fingerprint", "got 12"),
        (body(payload(alert(fingerprint="f" * 41))), "alerts[0].fingerprint", "1 to 40"),
        (body(payload(alert(), alert())), "alerts[1].fingerprint", "is also alerts[0]'s"),
        (body(payload(alert(labels=None))), "alerts[0].labels", "missing"),
        (body(payload(alert(labels=["a"]))), "alerts[0].labels", "expected an object"),
        (body(payload(alert(labels={"a": 1}))), "alerts[0].labels", 'the label "a" is'),
        (body(payload(alert(labels={"a": None}))), "alerts[0].labels", "values are strings"),
        (body(payload(alert(labels={"a": "x\x00"}))), "alerts[0].labels", "NUL"),
        (body(payload(alert(labels={"a\x00": "x"}))), "alerts[0].labels", "NUL"),
        (b'{"version":"4","alerts":[{"status":"firing","labels":{"a":"\\ud800"},'
         b'"startsAt":"2026-03-01T11:00:00Z","fingerprint":"f"}]}',
         "alerts[0].labels", "lone surrogate"),
        (body(payload(alert(annotations="s"))), "alerts[0].annotations", "expected an object"),
        (body(payload(alert(annotations={"s": ["x"]}))), "alerts[0].annotations", "strings"),
        (body(payload(alert(startsAt=None))), "alerts[0].startsAt", "missing"),
        (body(payload(alert(startsAt=1767225600))), "alerts[0].startsAt", "RFC 3339"),
        (body(payload(alert(startsAt="yesterday"))), "alerts[0].startsAt", "RFC 3339"),
        (body(payload(alert(startsAt="2026-03-01T11:00:00"))), "alerts[0].startsAt", "RFC 3339"),
        (body(payload(alert(startsAt="2026-02-30T11:00:00Z"))), "alerts[0].startsAt", "day"),
        (body(payload(alert(startsAt="2026-03-01T11:00:60Z"))), "alerts[0].startsAt", "second"),
        (body(payload(alert(startsAt="0001-01-01T00:00:00Z"))), "alerts[0].startsAt", "zero"),
        (body(payload(alert(startsAt="1969-12-31T23:59:59Z"))), "alerts[0].startsAt",
         "before 1970"),
        (body(payload(alert(startsAt="0001-01-01T00:00:00+01:00"))), "alerts[0].startsAt",
         "out of the range"),
        (body(payload(alert(endsAt="9999-12-31T23:59:59-23:59"))), "alerts[0].endsAt",
         "out of the range"),
        (body(payload(alert(endsAt="2026-03-01T11:00:00+24:00"))), "alerts[0].endsAt", "a day"),
        (body(payload(alert(endsAt=False))), "alerts[0].endsAt", "a boolean"),
        (body(payload(alert(generatorURL=["x"]))), "alerts[0].generatorURL", "expected a URL"),
    ],
)  # fmt: skip
def test_a_malformed_payload_is_refused_naming_its_field(raw, field, says):
    with pytest.raises(Malformed) as refused:
        am.parse(raw)

    assert refused.value.field == field
    assert says in refused.value.message
    assert refused.value.status == 400
    assert str(refused.value).startswith(f"{field}: ")


def test_limits_of_one_alert_are_refused_naming_its_field():
    many = {f"l{i}": "v" for i in range(am.MOST_LABELS + 1)}
    long = {"a": "x" * am.LABELS_TOTAL}
    notes = {f"n{i}": "v" for i in range(am.MOST_ANNOTATIONS + 1)}
    wordy = {"description": "x" * am.ANNOTATIONS_TOTAL}
    for fields, field, says in [
        ({"labels": many}, "alerts[0].labels", f"at most {am.MOST_LABELS}"),
        ({"labels": long}, "alerts[0].labels", f"at most {am.LABELS_TOTAL}"),
        ({"annotations": notes}, "alerts[0].annotations", f"at most {am.MOST_ANNOTATIONS}"),
        ({"annotations": wordy}, "alerts[0].annotations", f"at most {am.ANNOTATIONS_TOTAL}"),
    ]:
        with pytest.raises(Malformed) as refused:
            am.parse(body(payload(alert(**fields))))
        assert (refused.value.field, says in refused.value.message) == (field, True)


def test_too_many_alerts_or_bytes_are_too_large():
    crowd = [alert(fingerprint=f"f{i}") for i in range(am.MOST_ALERTS + 1)]
    with pytest.raises(TooLarge) as refused:
        am.parse(body(payload(*crowd)))
    assert (refused.value.field, refused.value.status) == ("alerts", 413)
    assert "max_alerts" in refused.value.message

    huge = body(payload(junk="x" * am.MAX_BODY_BYTES))
    with pytest.raises(TooLarge) as refused:
        am.parse(huge)
    assert refused.value.field == "body"


def test_just_under_the_limits_is_read():
    crowd = [alert(fingerprint=f"f{i}") for i in range(am.MOST_ALERTS)]

    assert len(am.parse(body(payload(*crowd))).alerts) == am.MOST_ALERTS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T11:00:00Z", datetime(2026, 3, 1, 11, 0, tzinfo=UTC)),
        ("2026-03-01t11:00:00z", datetime(2026, 3, 1, 11, 0, tzinfo=UTC)),
        ("2026-03-01T12:30:00+01:30", datetime(2026, 3, 1, 11, 0, tzinfo=UTC)),
        ("2026-03-01T11:00:00.5-00:00", datetime(2026, 3, 1, 11, 0, 0, 500000, tzinfo=UTC)),
        ("2026-03-01 11:00:00.000000001Z", datetime(2026, 3, 1, 11, 0, tzinfo=UTC)),
    ],
)
def test_times_are_rfc_3339_in_utc(text, expected):
    assert am.parse_time(text) == expected


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://runbooks.example/api", True),
        ("http://prometheus:9090/graph?g0.expr=up%7Bjob%3D%22a%22%7D", True),
        ("ftp://x/y", False),
        ("/runbooks/api/", False),
        ("https://", False),
        ("https://a b", False),
        ("https://ex\u00e4mple.org/", False),
        ("https://x/\x00", False),
        ("https://x/" + "a" * am.LONGEST_LINK, False),
    ],
)
def test_only_web_addresses_are_kept_as_links(url, kept):
    assert am.web_link(url) == (url if kept else "")


# --- what an alert carries ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "severity"),
    [
        ({"severity": "critical"}, "critical"),
        ({"severity": " Critical "}, "critical"),
        ({"severity": "page"}, "critical"),
        ({"severity": "error"}, "critical"),
        ({"severity": "P1"}, "critical"),
        ({"severity": "warning"}, "warning"),
        ({"severity": "warn"}, "warning"),
        ({"severity": "info"}, "info"),
        ({"severity": "none"}, "info"),
        ({"severity": "whatever"}, "warning"),
        ({}, "warning"),
    ],
)
def test_severity_comes_from_the_severity_label(labels, severity):
    assert am.severity_of(labels) == severity


@pytest.mark.parametrize(
    ("annotations", "summary"),
    [
        ({"summary": "s", "description": "d"}, "s"),
        ({"summary": " ", "description": "d"}, "d"),
        ({"message": "m"}, "m"),
        ({"runbook_url": "https://x"}, ""),
    ],
)
def test_summary_is_the_first_annotation_that_says_something(annotations, summary):
    assert am.summary_of(annotations) == summary


def test_name_is_the_alertname_label():
    assert am.name_of({"alertname": "HighLatency"}) == "HighLatency"
    assert am.name_of({"alertname": "x" * 300}) == "x" * am.LONGEST_NAME
    assert am.name_of({"job": "api"}) == "alertmanager"


RUNBOOKS = {"api-latency": "/runbooks/api-latency/"}


@pytest.mark.parametrize(
    ("annotations", "labels", "link"),
    [
        ({"runbook_url": "https://wiki.example/rb"}, {}, "https://wiki.example/rb"),
        ({"runbook_url": "api-latency"}, {}, "/runbooks/api-latency/"),
        ({}, {"runbook": "api-latency"}, "/runbooks/api-latency/"),
        ({}, {"runbook": "https://wiki.example/rb"}, "https://wiki.example/rb"),
        # The annotation first; one that names nothing leaves the label its turn.
        ({"runbook_url": "https://a.example"}, {"runbook": "api-latency"}, "https://a.example"),
        ({"runbook_url": "no-such-runbook"}, {"runbook": "api-latency"}, "/runbooks/api-latency/"),
        ({"runbook_url": "no-such-runbook"}, {}, ""),
        ({"runbook_url": "javascript:alert(1)"}, {}, ""),
        ({}, {}, ""),
    ],
)
def test_the_runbook_link_comes_from_the_annotation_or_the_label(annotations, labels, link):
    incoming = am.parse(body(payload(alert(annotations=annotations, labels=labels)))).alerts[0]

    assert am.runbook_of(incoming, RUNBOOKS) == link


def test_the_slugs_to_look_up_are_the_candidates_shaped_like_slugs():
    data = payload(
        alert(fingerprint="a", annotations={"runbook_url": "api-latency"}),
        alert(fingerprint="b", labels={"runbook": "db-down"}),
        alert(fingerprint="c", annotations={"runbook_url": "https://x.example/"}),
        alert(fingerprint="d", labels={"runbook": "Not A Slug"}),
    )

    assert am.runbook_slugs(am.parse(body(data))) == {"api-latency", "db-down"}


def test_our_fingerprint_is_theirs_within_the_integration():
    assert am.alert_fingerprint(7, "3a5f1c0e9b2d4a61") == "am:7:3a5f1c0e9b2d4a61"


# --- deciding --------------------------------------------------------------------------

FP = "3a5f1c0e9b2d4a61"
FIRING = alert(startsAt="2026-03-01T11:00:00Z")
RESOLVED = alert(status="resolved", startsAt="2026-03-01T11:00:00Z", endsAt="2026-03-01T11:45:00Z")
SHOWN = Shown(
    rule_key="HighLatency",
    severity="critical",
    labels={"alertname": "HighLatency", "severity": "critical", "job": "api"},
    annotations={"summary": "p99 over 2s"},
    runbook_url="",
)
OPEN = Held(open=OpenAlert(alert_id=5, started_at=T1, shown=SHOWN))


def decided(incoming: dict, held: Held | None, now: datetime = NOW) -> am.Action:
    parsed = am.parse(body(payload(incoming)))
    [action] = am.decide(parsed, {FP: held} if held else {}, now)
    return action


@pytest.mark.parametrize(
    ("incoming", "held", "expected"),
    [
        # 2. Firing, nothing open: opened, at its start.
        (FIRING, None, Open),
        # ... unless this occurrence (or a later one) was resolved here already.
        (FIRING, Held(resolved_start=T1), Leave),
        (FIRING, Held(resolved_start=T2), Leave),
        # A new occurrence, after one resolved: a new alert.
        (alert(startsAt="2026-03-01T11:30:01Z"), Held(resolved_start=T2), Open),
        # 3. Firing, open and as told: nothing.
        (FIRING, OPEN, Leave),
        # ... with something new to say: updated.
        (alert(annotations={"summary": "p99 over 3s"}), OPEN, Update),
        (alert(labels={**SHOWN.labels, "severity": "warning"}), OPEN, Update),
        (alert(annotations={"summary": "p99 over 2s", "runbook_url": "https://x.y/"}), OPEN,
         Update),
        # 4. Resolved, open: resolved.
        (RESOLVED, OPEN, Resolve),
        # 4b. A notification of an earlier occurrence than the open one: nothing.
        (alert(status="resolved", startsAt="2026-03-01T10:00:00Z"), OPEN, Leave),
        (alert(startsAt="2026-03-01T10:00:00Z", annotations={"summary": "old"}), OPEN, Leave),
        # A later occurrence while one is open (its resolve was missed): the open one.
        (alert(startsAt="2026-03-01T11:30:00Z", annotations={"summary": "new"}), OPEN, Update),
        # 5. Resolved, nothing open: nothing.
        (RESOLVED, Held(resolved_start=T1), Leave),
        (RESOLVED, None, Leave),
    ],
)  # fmt: skip
def test_decide(incoming, held, expected):
    assert type(decided(incoming, held)) is expected


def test_an_opening_carries_the_alert():
    action = am.decide(
        am.parse(body(payload(alert(labels={**SHOWN.labels, "runbook": "api-latency"})))),
        {},
        NOW,
        RUNBOOKS,
    )[0]

    assert isinstance(action, Open)
    assert action.fingerprint == FP
    assert action.shown.rule_key == "HighLatency"
    assert action.shown.severity == "critical"
    assert action.shown.runbook_url == "/runbooks/api-latency/"
    assert action.started_at == datetime(2026, 3, 1, 11, 0, 0, 123456, tzinfo=UTC)
    assert dict(action.details) == {
        "fingerprint": FP,
        "starts_at": "2026-03-01T11:00:00.123456Z",
        "generator_url": "http://prometheus:9090/graph?g0.expr=up",
    }


def test_a_start_in_our_future_is_taken_as_now():
    action = decided(alert(startsAt="2026-03-01T12:05:00Z"), None)

    assert isinstance(action, Open)
    assert action.started_at == NOW


def test_a_resolve_happens_at_its_end_kept_between_the_start_and_now():
    at = decided(RESOLVED, OPEN)
    assert isinstance(at, Resolve)
    assert (at.alert_id, at.at) == (5, datetime(2026, 3, 1, 11, 45, tzinfo=UTC))

    too_late = decided(alert(status="resolved", endsAt="2026-03-02T00:00:00Z"), OPEN)
    assert too_late.at == NOW

    too_early = decided(
        alert(status="resolved", startsAt="2026-03-01T11:00:00Z", endsAt="2026-03-01T10:00:00Z"),
        OPEN,
    )
    assert too_early.at == T1

    no_end = decided(alert(status="resolved", startsAt="2026-03-01T11:00:00Z"), OPEN)
    assert no_end.at == NOW


def test_the_same_payload_twice_changes_nothing():
    """Apply the first decision to what we hold, as the edge would, and decide again."""
    parsed = am.parse(body(payload(FIRING)))
    [first] = am.decide(parsed, {}, NOW)
    held = Held(open=OpenAlert(alert_id=9, started_at=first.started_at, shown=first.shown))

    assert am.decide(parsed, {FP: held}, NOW + timedelta(minutes=5)) == (Leave(FP, am.UNCHANGED),)

    resolved = am.parse(body(payload(RESOLVED)))
    [resolve] = am.decide(resolved, {FP: held}, NOW)
    assert isinstance(resolve, Resolve)
    after = Held(resolved_start=first.started_at)
    assert am.decide(resolved, {FP: after}, NOW) == (Leave(FP, am.NOTHING_OPEN),)
    # An old firing notification, retried after the resolve, re-opens nothing.
    assert am.decide(parsed, {FP: after}, NOW) == (Leave(FP, am.RESOLVED_ALREADY),)


def test_one_action_per_alert_in_the_payloads_order():
    parsed = am.parse(
        body(
            payload(
                alert(fingerprint="b"),
                alert(fingerprint=FP, status="resolved"),
                alert(fingerprint="c", status="resolved"),
            )
        )
    )

    actions = am.decide(parsed, {FP: OPEN}, NOW)

    assert [type(a) for a in actions] == [Open, Resolve, Leave]
    assert [a.fingerprint for a in actions] == ["b", FP, "c"]
