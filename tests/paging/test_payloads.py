import hashlib
import hmac
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.alerting.models import Severity
from controlplane.paging.payloads import (
    DEDUP_KEY_LIMIT,
    EMAIL_BUNDLE_LIMIT,
    NOT_ENDED,
    PAGERDUTY_EVENT_LIMIT,
    PAGERDUTY_SUMMARY_LIMIT,
    SEVERITIES,
    SIGNATURE_HEADER,
    SLACK_BUNDLE_LIMIT,
    SLACK_HEADER_LIMIT,
    SLACK_SECTION_LIMIT,
    TEST_NOTE,
    TIMESTAMP_HEADER,
    TRACE_HEADER,
    AlertNotice,
    AuditTags,
    clip,
    dedup_key,
    email_bundle,
    email_message,
    encode_body,
    pagerduty_event,
    slack_bundle,
    slack_message,
    value_text,
    verify_webhook_signature,
    webhook_body,
    webhook_headers,
    webhook_signature,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NAN = float("nan")
INF = float("inf")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ROUTING_KEY = "R0uTiNgKeY0123456789abcdefABCDEF"
AUDIT = AuditTags(request_id="req-7f3a", user_id="42", organization_id="3", actor="beat")


def notice(**changes) -> AlertNotice:
    base = AlertNotice(
        alert_id=17,
        rule_key="api.5xx",
        rule_name="API 5xx ratio",
        summary="5xx ratio is 7% on checkout",
        severity="critical",
        event="trigger",
        value=0.07,
        opened_at=T0,
        fingerprint="9f86d081884c7d65",
        organization="acme",
        trace_id=TRACE,
        audit=AUDIT,
        labels={"instance": "api-1:8000", "job": "api"},
        annotations={"description": "Too many errors"},
        service="checkout",
        runbook_url="https://runbooks.example.com/api-5xx",
        alert_url="https://cp.example.com/alerts/17/",
        acknowledge_url="https://cp.example.com/alerts/17/ack/signed-token/",
    )
    return replace(base, **changes)


def resolved(**changes) -> AlertNotice:
    return notice(event="resolve", resolved_at=T0 + timedelta(minutes=5), **changes)


def mrkdwn_texts(message: dict) -> list[str]:
    """Every text Slack parses as mrkdwn: the fallback, sections, fields, contexts."""
    texts = [message["text"]]
    for block in message["blocks"]:
        if block["type"] == "section":
            texts.append(block["text"]["text"])
            texts += [field["text"] for field in block.get("fields", [])]
        elif block["type"] == "context":
            texts += [element["text"] for element in block["elements"]]
    return texts


def our_links_removed(text: str) -> str:
    return re.sub(r"<https://cp\.example\.com/[^|>]*\|[A-Za-z ]+>", "", text).replace(
        "<https://runbooks.example.com/api-5xx|Runbook>", ""
    )


def check_slack_limits(message: dict) -> None:
    assert len(message["blocks"]) <= 50
    for block in message["blocks"]:
        if block["type"] == "header":
            assert 0 < len(block["text"]["text"]) <= SLACK_HEADER_LIMIT
        elif block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= SLACK_SECTION_LIMIT
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
        elif block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
            assert all(len(e["text"]) <= SLACK_SECTION_LIMIT for e in block["elements"])
    json.dumps(message, allow_nan=False)


# The notice itself.


def test_severities_are_the_alerting_contexts():
    assert SEVERITIES == tuple(Severity.values)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"severity": "page"}, "severity must be one of critical, warning, info"),
        ({"event": "fire"}, "event must be one of trigger, reminder, acknowledge, resolve, test"),
        ({"opened_at": datetime(2026, 1, 1)}, "opened_at must be an aware datetime"),
        ({"event": "resolve"}, "a resolve notice needs resolved_at"),
    ],
)
def test_a_notice_refuses_what_no_payload_could_say(changes, message):
    with pytest.raises(ValueError, match=message):
        notice(**changes)


def test_a_test_event_is_always_a_test_and_labels_cannot_change_behind_its_back():
    labels = {"job": "api"}
    test = notice(event="test", labels=labels)
    labels["job"] = "changed"
    assert test.is_test
    assert test.labels["job"] == "api"
    with pytest.raises(TypeError):
        test.labels["job"] = "x"


def test_audit_tags_read_the_alerts_audit_field():
    audit = {"organization": "3", "rule": "api.5xx", "actor": "beat", "request_id": None}
    assert AuditTags.from_alert(audit) == AuditTags(organization_id="3", actor="beat")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.07, "0.07"),
        (2.0, "2"),
        (-3.5, "-3.5"),
        (1e20, "1e+20"),
        (NAN, "NaN"),
        (INF, "+Inf"),
        (-INF, "-Inf"),
        (None, "no value"),
    ],
)
def test_values_read_as_prometheus_spells_them(value, text):
    assert value_text(value) == text


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("abc", 3, "abc"),
        ("abcd", 3, "ab…"),
        ("😀😀😀", 6, "😀😀😀"),  # 6 UTF-16 units
        ("😀😀😀", 5, "😀😀…"),
        ("a😀", 2, "a…"),  # the emoji alone would take 2 of the 2
    ],
)
def test_clip_counts_utf16_units_and_ends_with_an_ellipsis(text, limit, expected):
    assert clip(text, limit) == expected


# Slack.


def test_slack_message_shape():
    message = slack_message(notice())
    header, summary, labels, links, context = message["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": ":red_circle: Firing: API 5xx ratio", "emoji": True},
    }
    assert summary["text"] == {"type": "mrkdwn", "text": "5xx ratio is 7% on checkout"}
    assert [f["text"] for f in summary["fields"]] == [
        "*Severity*\nCRITICAL",
        "*Value*\n0.07",
        "*Service*\ncheckout",
        "*Organisation*\nacme",
    ]
    assert labels["text"]["text"] == "*Labels*\ninstance=api-1:8000\njob=api"
    assert links["text"]["text"] == (
        "<https://cp.example.com/alerts/17/ack/signed-token/|Acknowledge> · "
        "<https://cp.example.com/alerts/17/|Alert page> · "
        "<https://runbooks.example.com/api-5xx|Runbook>"
    )
    assert [e["text"] for e in context["elements"]] == [
        f"Trace `{TRACE}`",
        "request id `req-7f3a`",
        "user id `42`",
        "organization id `3`",
        "actor `beat`",
        "organisation `acme`",
    ]
    assert message["text"] == "[CRITICAL] Firing: API 5xx ratio: 5xx ratio is 7% on checkout"
    check_slack_limits(message)


def test_slack_resolve_has_no_acknowledge_link_and_a_test_says_so():
    message = slack_message(resolved(is_test=True))
    text = json.dumps(message)
    assert "Acknowledge" not in text
    assert (
        message["blocks"][0]["text"]["text"] == ":white_check_mark: [TEST] Resolved: API 5xx ratio"
    )
    assert message["blocks"][-1]["elements"][-1]["text"] == f"*{TEST_NOTE}*"


@pytest.mark.parametrize(
    ("field", "evil"),
    [
        ("labels", {"instance": "<http://evil|click>"}),
        ("labels", {"<http://evil|click>": "x"}),
        ("summary", "<!channel> <http://evil|click> & <@U123>"),
        ("rule_name", "<http://evil|click>"),
        ("service", "<http://evil|click>"),
        ("trace_id", "<http://evil|click>"),
        ("audit", AuditTags(request_id="<http://evil|click>")),
    ],
)
def test_user_text_cannot_inject_a_link_or_a_mention_into_slack(field, evil):
    message = slack_message(notice(**{field: evil}))
    for text in mrkdwn_texts(message):
        rest = our_links_removed(text)
        assert "<" not in rest, text
        assert ">" not in rest, text
    assert "&lt;http://evil|click&gt;" in json.dumps(message)


@pytest.mark.parametrize(
    ("url", "link"),
    [
        ("javascript:alert(1)", None),
        ("https://runbooks.example.com/a|b>c", "<https://runbooks.example.com/a%7Cb%3Ec|Runbook>"),
        (
            "https://runbooks.example.com/?a=1&b=2",
            "<https://runbooks.example.com/?a=1&amp;b=2|Runbook>",
        ),
        ("https://runbooks.example.com/" + "x" * 800, None),
        ("https://runbooks.example.com/a b", None),
    ],
)
def test_slack_links_are_web_links_that_cannot_break_out(url, link):
    links = slack_message(notice(runbook_url=url))["blocks"][3]["text"]["text"]
    if link is None:
        assert "Runbook" not in links
    else:
        assert links.endswith(link)


def test_slack_text_is_cut_to_the_block_limits():
    message = slack_message(notice(rule_name="R" * 400, summary="s" * 5000, service="v" * 3000))
    header, summary, *_ = message["blocks"]
    assert header["text"]["text"] == ":red_circle: Firing: " + "R" * 128 + "…"
    assert len(header["text"]["text"]) == SLACK_HEADER_LIMIT
    assert summary["text"]["text"] == "s" * 2999 + "…"
    check_slack_limits(message)


def test_slack_never_cuts_an_entity_in_half():
    for length in range(2990, 3000):
        text = slack_message(notice(summary="x" * length + "&" * 20))["blocks"][1]["text"]["text"]
        assert len(text) <= SLACK_SECTION_LIMIT
        assert re.search(r"&[a-z]*…$", text) is None, text[-8:]
        assert text.endswith("&amp;…") or text.endswith("x…")


def test_slack_bundle_lists_up_to_its_limit_and_counts_the_rest():
    notices = [notice(alert_id=n, rule_name=f"rule {n}") for n in range(30)]
    message = slack_bundle(notices, more_url="https://cp.example.com/alerts/")
    header, *sections, more = message["blocks"]
    assert SLACK_BUNDLE_LIMIT == 20
    assert header["text"]["text"] == ":rotating_light: 30 alert notifications"
    assert len(sections) == 20
    assert sections[0]["text"]["text"].startswith(":red_circle: *[CRITICAL] Firing: rule 0*\n")
    assert f"Trace `{TRACE}`" in sections[0]["text"]["text"]
    assert "request id `req-7f3a`" in sections[0]["text"]["text"]
    assert more["elements"][0]["text"] == (
        "…and 10 more not listed here. <https://cp.example.com/alerts/|See them all>"
    )
    assert message["text"].endswith("rule 19 and 10 more")
    check_slack_limits(message)


def test_slack_bundle_within_its_limit_says_nothing_more():
    message = slack_bundle([notice(is_test=True), notice(is_test=True)], limit=5)
    assert [b["type"] for b in message["blocks"]] == ["header", "section", "section"]
    assert "[TEST] 2 alert notifications" in message["blocks"][0]["text"]["text"]
    assert TEST_NOTE in message["blocks"][1]["text"]["text"]


@pytest.mark.parametrize(("notices", "limit"), [([], 5), ([notice()], 0), ([notice()], 46)])
def test_slack_bundle_refuses_an_empty_bundle_or_an_impossible_limit(notices, limit):
    with pytest.raises(ValueError, match="bundle"):
        slack_bundle(notices, limit)


def test_a_bundled_alert_with_huge_fields_still_fits_its_section():
    huge = notice(summary="&" * 5000, runbook_url="https://r.example/" + "&" * 700)
    message = slack_bundle([huge] * 3)
    check_slack_limits(message)


# PagerDuty.


def test_pagerduty_trigger_shape():
    event = pagerduty_event(notice(), ROUTING_KEY)
    assert event == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "controlplane/alert/17/9f86d081884c7d65",
        "payload": {
            "summary": "API 5xx ratio: 5xx ratio is 7% on checkout",
            "source": "api-1:8000",
            "severity": "critical",
            "timestamp": "2026-01-01T12:00:00Z",
            "component": "checkout",
            "group": "acme",
            "class": "api.5xx",
            "custom_details": {
                "labels": {"instance": "api-1:8000", "job": "api"},
                "annotations": {"description": "Too many errors"},
                "value": 0.07,
                "trace_id": TRACE,
                "audit": {
                    "request_id": "req-7f3a",
                    "user_id": "42",
                    "organization_id": "3",
                    "actor": "beat",
                },
                "is_test": False,
                "event": "trigger",
                "alert_id": 17,
                "fingerprint": "9f86d081884c7d65",
                "organization": "acme",
                "acknowledge_url": "https://cp.example.com/alerts/17/ack/signed-token/",
            },
        },
        "links": [
            {"href": "https://cp.example.com/alerts/17/", "text": "Alert page"},
            {"href": "https://runbooks.example.com/api-5xx", "text": "Runbook"},
            {
                "href": "https://cp.example.com/alerts/17/ack/signed-token/",
                "text": "Acknowledge in the control plane",
            },
        ],
        "client": "Observability control plane",
        "client_url": "https://cp.example.com/alerts/17/",
    }


@pytest.mark.parametrize(
    ("severity", "mapped"), [("critical", "critical"), ("warning", "warning"), ("info", "info")]
)
def test_pagerduty_severity_is_mapped(severity, mapped):
    assert pagerduty_event(notice(severity=severity), ROUTING_KEY)["payload"]["severity"] == mapped


@pytest.mark.parametrize(
    ("event", "action"),
    [("trigger", "trigger"), ("reminder", "trigger"), ("acknowledge", "acknowledge")],
)
def test_pagerduty_follow_ups_use_the_triggers_dedup_key(event, action):
    sent = pagerduty_event(notice(event=event), ROUTING_KEY)
    assert sent["event_action"] == action
    assert sent["dedup_key"] == pagerduty_event(notice(), ROUTING_KEY)["dedup_key"]
    if action != "trigger":
        assert sent == {
            "routing_key": ROUTING_KEY,
            "event_action": action,
            "dedup_key": sent["dedup_key"],
        }


def test_pagerduty_resolve_has_only_the_key():
    assert pagerduty_event(resolved(), ROUTING_KEY) == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "controlplane/alert/17/9f86d081884c7d65",
    }


def test_a_pagerduty_test_is_marked_and_can_never_touch_a_real_incident():
    event = pagerduty_event(notice(event="test"), ROUTING_KEY)
    assert event["event_action"] == "trigger"
    assert event["payload"]["summary"].startswith("[TEST] API 5xx ratio")
    assert event["payload"]["custom_details"]["is_test"] is True
    assert event["dedup_key"] == "controlplane-test/alert/17/9f86d081884c7d65"
    assert event["dedup_key"] != dedup_key(notice())


def test_dedup_key_stays_within_255_characters_and_stable():
    long = notice(fingerprint="f" * 300)
    key = dedup_key(long)
    assert len(key) <= DEDUP_KEY_LIMIT
    assert key == dedup_key(replace(long, organization="renamed", event="acknowledge"))
    assert key != dedup_key(replace(long, fingerprint="f" * 299))


def test_pagerduty_summary_is_cut_to_1024():
    event = pagerduty_event(notice(summary="é" * 2000), ROUTING_KEY)
    summary = event["payload"]["summary"]
    assert len(summary) == PAGERDUTY_SUMMARY_LIMIT
    assert summary.endswith("é…")


def test_pagerduty_values_are_spelled_out():
    details = [
        pagerduty_event(notice(value=v), ROUTING_KEY)["payload"]["custom_details"]["value"]
        for v in (NAN, INF, -INF, None)
    ]
    assert details == ["NaN", "+Inf", "-Inf", None]


def test_pagerduty_event_stays_under_512_kb_by_cutting_label_values():
    # 200 labels of 3000 characters: 600 kB of labels, 200 kB once cut to 1024 each.
    labels = {f"l{n:03}": "v" * 3000 for n in range(200)}
    event = pagerduty_event(notice(labels=labels), ROUTING_KEY)
    details = event["payload"]["custom_details"]
    assert len(json.dumps(event).encode()) <= PAGERDUTY_EVENT_LIMIT
    assert details["truncated"] is True
    assert details["labels"]["l000"] == "v" * 1023 + "…"
    assert details["trace_id"] == TRACE  # what matters most is never cut


def test_pagerduty_event_drops_labels_and_annotations_when_cutting_is_not_enough():
    labels = {f"l{n:04}": "€" * 1000 for n in range(600)}  # non-ASCII: 6 bytes escaped
    event = pagerduty_event(notice(labels=labels, annotations=labels), ROUTING_KEY)
    details = event["payload"]["custom_details"]
    assert len(json.dumps(event).encode()) <= PAGERDUTY_EVENT_LIMIT
    assert details["labels"] == {}
    assert details["annotations"] == {}
    assert details["truncated"] is True
    assert details["audit"]["request_id"] == "req-7f3a"


def test_a_small_pagerduty_event_is_not_marked_truncated():
    assert "truncated" not in pagerduty_event(notice(), ROUTING_KEY)["payload"]["custom_details"]


# Email.


def test_email_subject_text_html_and_headers():
    email = email_message(notice())
    assert email.subject == "[CRITICAL] Firing: API 5xx ratio — 5xx ratio is 7% on checkout"
    for line in (
        "5xx ratio is 7% on checkout",
        "Rule:         API 5xx ratio (api.5xx)",
        "Value:        0.07",
        "Service:      checkout",
        "  instance=api-1:8000",
        "Acknowledge:  https://cp.example.com/alerts/17/ack/signed-token/",
        "Alert page:   https://cp.example.com/alerts/17/",
        "Runbook:      https://runbooks.example.com/api-5xx",
        f"Trace id:     {TRACE}",
        "Request id: req-7f3a",
        "User id: 42",
        "Organization id: 3",
    ):
        assert line in email.text.splitlines(), line
    assert f"<code>{TRACE}</code>" in email.html
    assert (
        '<a href="https://cp.example.com/alerts/17/ack/signed-token/">Acknowledge</a>' in email.html
    )
    assert email.headers == {
        "Auto-Submitted": "auto-generated",
        "X-Trace-Id": TRACE,
        "X-Alert-Organization": "acme",
        "X-Alert-Id": "17",
        "X-Alert-Event": "trigger",
        "X-Alert-Fingerprint": "9f86d081884c7d65",
        "X-Audit-Request-Id": "req-7f3a",
        "X-Audit-User-Id": "42",
        "X-Audit-Organization-Id": "3",
        "X-Audit-Actor": "beat",
    }


def test_email_html_escapes_what_users_wrote_and_text_keeps_it_as_typed():
    script = "<script>alert(1)</script>"
    email = email_message(
        notice(
            summary=script,
            rule_name='"><img src=x onerror=alert(1)>',
            labels={"x": script},
            runbook_url="javascript:alert(1)",
            alert_url='https://cp.example.com/a"onmouseover="x',
        )
    )
    assert "<script>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert "<img" not in email.html
    assert "javascript:" not in email.html
    assert 'href="https://cp.example.com/a&quot;onmouseover=&quot;x"' in email.html
    assert script in email.text


def test_email_subject_and_headers_cannot_carry_a_line_break():
    email = email_message(
        notice(rule_name="API\r\nBcc: x@evil.example", summary="s" * 500, trace_id="t\nX-Evil: 1")
    )
    assert "\n" not in email.subject
    assert "\r" not in email.subject
    assert email.subject.startswith("[CRITICAL] Firing: API Bcc: x@evil.example — ")
    assert len(email.subject) == 200
    assert all("\n" not in value and "\r" not in value for value in email.headers.values())
    assert email.headers["X-Trace-Id"] == "t X-Evil: 1"


@pytest.mark.parametrize(("value", "text"), [(NAN, "NaN"), (INF, "+Inf"), (-INF, "-Inf")])
def test_email_values_are_spelled_out(value, text):
    email = email_message(notice(value=value))
    assert f"Value:        {text}" in email.text
    assert f"<td>{text}</td>" in email.html


def test_email_of_a_test_and_of_a_resolve():
    test = email_message(resolved(is_test=True))
    assert test.subject.startswith("[CRITICAL] [TEST] Resolved: API 5xx ratio")
    assert test.text.startswith(TEST_NOTE)
    assert TEST_NOTE in test.html
    assert test.headers["X-Test-Notification"] == "true"
    assert "Resolved at:  2026-01-01T12:05:00Z" in test.text
    assert "Acknowledge" not in test.text
    assert "Acknowledge" not in test.html


def test_email_bundle_lists_up_to_its_limit():
    notices = [notice(alert_id=n, rule_name=f"rule {n}", trace_id=f"{n:032x}") for n in range(5)]
    notices[3] = replace(notices[3], severity="warning")
    email = email_bundle(notices, limit=2)
    assert email.subject == "[CRITICAL] 5 alert notifications: rule 0, rule 1"
    assert email.text.startswith("5 alert notifications; the first 2 are listed here.")
    assert "rule 1" in email.text
    assert "rule 2" not in email.text
    assert "...and 3 more not listed here." in email.text
    assert "…and 3 more not listed here." in email.html
    assert email.headers["X-Trace-Id"] == ", ".join(f"{n:032x}" for n in range(5))
    six = [*notices, notice(trace_id="f" * 32)]
    assert email_bundle(six).headers["X-Trace-Id"] == ", ".join(f"{n:032x}" for n in range(5))
    assert email.headers["X-Alert-Count"] == "5"
    assert "Request id: req-7f3a" in email.text
    assert EMAIL_BUNDLE_LIMIT == 50
    assert email_bundle(notices).text.count("Rule:  ") == 5


def test_email_bundle_names_the_worst_severity_and_marks_tests():
    notices = [notice(severity="info", is_test=True), notice(severity="warning", is_test=True)]
    email = email_bundle(notices)
    assert email.subject.startswith("[WARNING] [TEST] 2 alert notifications")
    assert email.text.startswith(TEST_NOTE)
    with pytest.raises(ValueError, match="bundle"):
        email_bundle([])


# Webhooks.


def test_webhook_body_is_alertmanager_v4_plus_ours():
    body = webhook_body([notice()], receiver="ops-webhook", external_url="https://cp.example.com")
    assert body == {
        "version": "4",
        "groupKey": "controlplane/acme/ops-webhook",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "ops-webhook",
        "groupLabels": {},
        "commonLabels": {
            "alertname": "api.5xx",
            "severity": "critical",
            "instance": "api-1:8000",
            "job": "api",
        },
        "commonAnnotations": {
            "description": "Too many errors",
            "summary": "5xx ratio is 7% on checkout",
            "runbook_url": "https://runbooks.example.com/api-5xx",
        },
        "externalURL": "https://cp.example.com",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "api.5xx",
                    "severity": "critical",
                    "instance": "api-1:8000",
                    "job": "api",
                },
                "annotations": {
                    "description": "Too many errors",
                    "summary": "5xx ratio is 7% on checkout",
                    "runbook_url": "https://runbooks.example.com/api-5xx",
                },
                "startsAt": "2026-01-01T12:00:00Z",
                "endsAt": NOT_ENDED,
                "generatorURL": "https://cp.example.com/alerts/17/",
                "fingerprint": "9f86d081884c7d65",
                "alert_id": 17,
                "notification_id": None,
                "event": "trigger",
                "severity": "critical",
                "summary": "5xx ratio is 7% on checkout",
                "value": 0.07,
                "service": "checkout",
                "organization": "acme",
                "trace_id": TRACE,
                "audit": AUDIT.as_dict(),
                "runbook_url": "https://runbooks.example.com/api-5xx",
                "alert_url": "https://cp.example.com/alerts/17/",
                "acknowledge_url": "https://cp.example.com/alerts/17/ack/signed-token/",
                "is_test": False,
            }
        ],
        "trace_id": TRACE,
        "organization": "acme",
        "runbook_url": "https://runbooks.example.com/api-5xx",
        "alert_url": "https://cp.example.com/alerts/17/",
        "audit": AUDIT.as_dict(),
        "is_test": False,
    }
    assert NOT_ENDED == "0001-01-01T00:00:00Z"


def test_webhook_resolve_ends_the_alert_and_its_own_labels_win():
    body = webhook_body([resolved(labels={"alertname": "Theirs", "severity": "page"})])
    [alert] = body["alerts"]
    assert body["status"] == "resolved"
    assert alert["status"] == "resolved"
    assert alert["endsAt"] == "2026-01-01T12:05:00Z"
    assert alert["labels"] == {"alertname": "Theirs", "severity": "page"}
    assert alert["acknowledge_url"] == ""


def test_webhook_bundle_shares_only_what_is_common_and_counts_the_truncated():
    notices = [
        notice(alert_id=n, trace_id=f"{n:032x}", labels={"job": "api", "i": str(n)})
        for n in range(5)
    ]
    notices[4] = replace(notices[4], event="resolve", resolved_at=T0, is_test=True)
    body = webhook_body(notices, limit=3)
    assert len(body["alerts"]) == 3
    assert body["truncatedAlerts"] == 2
    assert body["status"] == "firing"
    assert body["trace_id"] == ""  # they differ: each alert has its own
    assert [a["trace_id"] for a in body["alerts"]] == [f"{n:032x}" for n in range(3)]
    assert body["organization"] == "acme"
    assert body["audit"] == AUDIT.as_dict()
    assert body["commonLabels"] == {"alertname": "api.5xx", "severity": "critical", "job": "api"}
    assert body["is_test"] is False


@pytest.mark.parametrize(("value", "spelled"), [(NAN, "NaN"), (INF, "+Inf"), (-INF, "-Inf")])
def test_webhook_values_are_json(value, spelled):
    body = webhook_body([notice(value=value)])
    assert body["alerts"][0]["value"] == spelled
    assert json.loads(encode_body(body))["alerts"][0]["value"] == spelled


def test_encode_body_refuses_a_bare_nan():
    with pytest.raises(ValueError, match="Out of range float values"):
        encode_body({"value": NAN})


def test_webhook_signature_matches_an_independent_hmac():
    body = b'{"version":"4","status":"firing"}'
    secret = "webhook-signing-secret-0123"
    expected = hmac.new(
        secret.encode("utf-8"), b"1767268800." + body, digestmod=hashlib.sha256
    ).hexdigest()
    assert webhook_signature(secret, 1767268800, body) == f"v1={expected}"


def test_signed_headers_verify_as_a_receiver_would():
    body = encode_body(webhook_body([notice()]))
    secret = "webhook-signing-secret-0123"
    headers = webhook_headers(body, trace_id=TRACE, secret=secret, timestamp=1767268800)
    assert (SIGNATURE_HEADER, TIMESTAMP_HEADER, TRACE_HEADER) == (
        "X-Signature",
        "X-Signature-Timestamp",
        "X-Trace-Id",
    )
    assert headers[TRACE_HEADER] == TRACE
    assert headers["Content-Type"] == "application/json"
    stamp, signature = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    now = 1767268800 + 60
    assert verify_webhook_signature(secret, stamp, signature, body, now=now)
    # Anything changed fails: body, secret, timestamp, signature; and a stale replay.
    assert not verify_webhook_signature(secret, stamp, signature, body + b" ", now=now)
    assert not verify_webhook_signature(secret + "x", stamp, signature, body, now=now)
    assert not verify_webhook_signature(secret, "1767268801", signature, body, now=now)
    assert not verify_webhook_signature(secret, stamp, signature[:-1] + "0", body, now=now)
    assert not verify_webhook_signature(secret, stamp, signature, body, now=now + 600)
    assert not verify_webhook_signature(secret, "-1", signature, body, now=now)
    assert not verify_webhook_signature(secret, "١٢", signature, body, now=now)


def test_unsigned_webhooks_carry_no_signature_headers():
    headers = webhook_headers(b"{}", trace_id=TRACE)
    assert headers == {"Content-Type": "application/json", TRACE_HEADER: TRACE}


def test_webhook_bundle_limits():
    with pytest.raises(ValueError, match="bundle"):
        webhook_body([])
    with pytest.raises(ValueError, match="bundle"):
        webhook_body([notice()], limit=0)


# Every payload carries the trace id and the audit tags, and marks a test.

BUILDERS = {
    "slack": slack_message,
    "slack bundle": lambda n: slack_bundle([n, n]),
    "pagerduty": lambda n: pagerduty_event(n, ROUTING_KEY),
    "email": lambda n: (e := email_message(n)).text + e.html + json.dumps(dict(e.headers)),
    "email bundle": lambda n: (e := email_bundle([n, n])).text + e.html,
    "webhook": lambda n: webhook_body([n]),
}


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_every_payload_carries_the_trace_id_and_the_audit_tags(build):
    shown = json.dumps(build(notice()), ensure_ascii=False)
    for tag in (TRACE, "req-7f3a", "42", "beat"):
        assert tag in shown


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_every_payload_marks_a_test(build):
    assert "TEST" not in json.dumps(build(notice()))
    shown = json.dumps(build(notice(is_test=True)))
    assert "[TEST]" in shown or '"is_test": true' in shown


# Properties.

texts = st.text(max_size=6000)


@settings(max_examples=150, deadline=None)
@given(summary=texts, rule_name=st.text(min_size=1, max_size=400))
def test_any_text_fits_the_limits_and_is_json(summary, rule_name):
    n = notice(summary=summary, rule_name=rule_name)
    event = pagerduty_event(n, ROUTING_KEY)
    assert len(event["payload"]["summary"]) <= PAGERDUTY_SUMMARY_LIMIT
    assert len(json.dumps(event, allow_nan=False).encode()) <= PAGERDUTY_EVENT_LIMIT
    check_slack_limits(slack_message(n))
    check_slack_limits(slack_bundle([n] * 3))
    encode_body(webhook_body([n]))
    assert len(email_message(n).subject) <= 200


@settings(max_examples=150, deadline=None)
@given(
    labels=st.dictionaries(st.text(max_size=40), st.text(max_size=200), max_size=8),
    summary=st.text(alphabet="<>&|!@#x ", max_size=300),
)
def test_no_text_escapes_slack_escaping(labels, summary):
    message = slack_message(notice(labels=labels, summary=summary, service=summary))
    for text in mrkdwn_texts(message):
        rest = our_links_removed(text)
        assert "<" not in rest
        assert ">" not in rest
