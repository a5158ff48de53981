import json

import pytest

from controlplane.paging.channels import (
    MASK,
    NON_FIELD_ERRORS,
    PAGERDUTY_EVENTS_URL,
    ChannelConfigError,
    ChannelKind,
    EmailConfig,
    PagerDutyConfig,
    SlackConfig,
    WebhookConfig,
    from_json,
    masked,
    merge_update,
    parse_config,
    to_json,
)

ROUTING_KEY = "R0uTiNgKeY0123456789abcdefABCDEF"  # 32 letters and digits
SLACK_URL = "https://hooks.slack.com/services/T0001/B0002/XXXXsecretpathXk9Q"
SECRET = "webhook-signing-secret-0123"
API_KEY = "api-key-value-0123456789"


def refused(kind, raw, **kwargs) -> dict[str, list[str]]:
    with pytest.raises(ChannelConfigError) as caught:
        parse_config(kind, raw, **kwargs)
    return caught.value.errors


# Every refusal, field by field: (kind, raw, field, message).

REFUSALS = [
    # The configuration as a whole.
    (
        "email",
        ["oncall@example.com"],
        NON_FIELD_ERRORS,
        'A channel of kind email takes an object such as {"to": ["oncall@example.com"]}, '
        "not a list.",
    ),
    (
        "webhook",
        None,
        NON_FIELD_ERRORS,
        'A channel of kind webhook takes an object such as {"url": "https://example.com/hook"}, '
        "not null.",
    ),
    (
        "email",
        {"to": ["a@example.com"], "cc": ["b@example.com"]},
        "cc",
        "Unknown field: channels of kind email take to.",
    ),
    (
        "pagerduty",
        {"routing_key": ROUTING_KEY, "severity": "critical"},
        "severity",
        "Unknown field: channels of kind pagerduty take routing_key, url.",
    ),
    (
        "slack",
        {"url": SLACK_URL, "channel": "#ops"},
        "channel",
        "Unknown field: channels of kind slack take url.",
    ),
    # Email.
    (
        "email",
        {},
        "to",
        'Give the addresses to send to, as a list: ["oncall@example.com"].',
    ),
    (
        "email",
        {"to": "oncall@example.com"},
        "to",
        'Must be a list of addresses such as ["oncall@example.com"], not a string.',
    ),
    ("email", {"to": []}, "to", "Give at least one address."),
    (
        "email",
        {"to": [f"a{n}@example.com" for n in range(21)]},
        "to",
        "At most 20 addresses; this list has 21.",
    ),
    ("email", {"to": ["a@example.com", 5]}, "to", "Address 2 must be a string, not a number."),
    ("email", {"to": [True]}, "to", "Address 1 must be a string, not a boolean."),
    ("email", {"to": ["not an address"]}, "to", "'not an address' is not a valid email address."),
    (
        "email",
        {"to": ["Ops <ops@example.com>"]},
        "to",
        ("'Ops <ops@example.com>' is not a valid email address."),
    ),
    (
        "email",
        {"to": ["ops@example.com\nBcc: x@evil.example"]},
        "to",
        "'ops@example.com\\nBcc: x@evil.example' is not a valid email address.",
    ),
    (
        "email",
        {"to": ["ops@example.com", "OPS@example.com"]},
        "to",
        "'OPS@example.com' is listed twice.",
    ),
    # Slack.
    (
        "slack",
        {},
        "url",
        "Give the incoming-webhook URL Slack showed when the webhook was added.",
    ),
    ("slack", {"url": 42}, "url", "Must be a string: the incoming-webhook URL, not a number."),
    (
        "slack",
        {"url": "https://hooks.slack.com/" + "x" * 2000},
        "url",
        "A URL can be at most 2000 characters long.",
    ),
    (
        "slack",
        {"url": "ftp://hooks.slack.com/services/x"},
        "url",
        "The URL must start with http:// or https://.",
    ),
    ("slack", {"url": "https:///services/x"}, "url", "The URL has no host name."),
    (
        "slack",
        {"url": "https://hooks.slack.com/services /x"},
        "url",
        "A URL cannot contain spaces or line breaks.",
    ),
    (
        "slack",
        {"url": "https://user:pw@hooks.slack.com/services/x"},
        "url",
        "Put credentials in the auth header, not in the URL: URLs are shown to readers.",
    ),
    (
        "slack",
        {"url": "http://hooks.slack.com/services/T0001/B0002/XXXXsecretpathXk9Q"},
        "url",
        "A Slack webhook URL starts with https://hooks.slack.com/.",
    ),
    (
        "slack",
        {"url": "https://hooks.slack.com:8443/services/T0001/B0002/XXXXsecretpathXk9Q"},
        "url",
        "A Slack webhook URL starts with https://hooks.slack.com/.",
    ),
    (
        "slack",
        {"url": "https://hooks.slack.evil.example/services/T0001/B0002/XXXXsecretpathXk9Q"},
        "url",
        "A Slack webhook URL starts with https://hooks.slack.com/; hooks.slack.evil.example "
        "is not one of the hosts listed in SLACK_WEBHOOK_HOSTS.",
    ),
    (
        "slack",
        {"url": "https://hooks.slack.com/"},
        "url",
        "The URL has no path: a webhook URL ends in the secret part Slack gave.",
    ),
    # PagerDuty.
    (
        "pagerduty",
        {},
        "routing_key",
        "Give the routing key: the Integration Key of an Events API v2 integration.",
    ),
    ("pagerduty", {"routing_key": None}, "routing_key", "Must be a string, not null."),
    (
        "pagerduty",
        {"routing_key": ROUTING_KEY[:31]},
        "routing_key",
        "A routing key is exactly 32 letters and digits; this one has 31 characters.",
    ),
    (
        "pagerduty",
        {"routing_key": ROUTING_KEY + "0"},
        "routing_key",
        "A routing key is exactly 32 letters and digits; this one has 33 characters.",
    ),
    (
        "pagerduty",
        {"routing_key": ROUTING_KEY[:31] + "-"},
        "routing_key",
        "A routing key is exactly 32 letters and digits; this one has other characters.",
    ),
    (
        "pagerduty",
        {"routing_key": ROUTING_KEY[:31] + "é"},
        "routing_key",
        "A routing key is exactly 32 letters and digits; this one has other characters.",
    ),
    (
        "pagerduty",
        {"routing_key": MASK + "CDEF"},
        "routing_key",
        "This is the mask shown for a stored key: enter the whole routing key.",
    ),
    (
        "pagerduty",
        {"routing_key": ROUTING_KEY, "url": ["https://events.eu.pagerduty.com/v2/enqueue"]},
        "url",
        'Must be a string: the Events API endpoint, or "" for PagerDuty\'s, not a list.',
    ),
    (
        "pagerduty",
        {"routing_key": ROUTING_KEY, "url": "events.eu.pagerduty.com"},
        "url",
        "The URL must start with http:// or https://.",
    ),
    # Webhook: the URL.
    ("webhook", {}, "url", "Give the URL to POST alerts to."),
    (
        "webhook",
        {"url": {"href": "https://x.example"}},
        "url",
        "Must be a string: the URL to POST alerts to, not an object.",
    ),
    (
        "webhook",
        {"url": "http://[::1/hook"},
        "url",
        "This is not a valid URL (Invalid IPv6 URL); an IPv6 host goes in brackets, "
        "as in http://[::1]:9090.",
    ),
    (
        "webhook",
        {"url": "https://x.example:99999/hook"},
        "url",
        "The URL's port is not a number from 1 to 65535.",
    ),
    (
        "webhook",
        {"url": "https://x.example/\x00"},
        "url",
        "A URL cannot contain a NUL character.",
    ),
    (
        "webhook",
        {"url": "https://" + "a" * 64 + ".example/hook"},
        "url",
        "The host name is not valid (each part at most 63 characters, letters, digits and "
        "hyphens).",
    ),
    # Webhook: the secret.
    (
        "webhook",
        {"url": "https://x.example/hook", "secret": None},
        "secret",
        'Must be a string ("" for no signature), not null.',
    ),
    (
        "webhook",
        {"url": "https://x.example/hook", "secret": "short"},
        "secret",
        "A signing secret needs at least 16 characters.",
    ),
    (
        "webhook",
        {"url": "https://x.example/hook", "secret": "s" * 1025},
        "secret",
        "A signing secret can be at most 1024 characters long.",
    ),
    (
        "webhook",
        {"url": "https://x.example/hook", "secret": SECRET + "\n"},
        "secret",
        "A signing secret cannot contain control characters or line breaks.",
    ),
    # Webhook: the headers.
    (
        "webhook",
        {"url": "https://x.example/hook", "headers": [["X-Team", "ops"]]},
        "headers",
        'Must be an object of header names and values such as {"X-Team": "ops"}, not a list.',
    ),
    (
        "webhook",
        {"url": "https://x.example/hook", "headers": {f"X-H{n}": "v" for n in range(17)}},
        "headers",
        "At most 16 headers; this has 17.",
    ),
    (
        "webhook",
        {"url": "https://x.example/hook", "headers": {"X Team": "ops"}},
        "headers",
        "'X Team' is not a header name: use letters, digits and !#$%&'*+-.^_`|~.",
    ),
    (
        "webhook",
        {"url": "https://x.example/hook", "headers": {"X-Team\r\nHost": "ops"}},
        "headers",
        "'X-Team\\r\\nHost' is not a header name: use letters, digits and !#$%&'*+-.^_`|~.",
    ),
    (
        "webhook",
        {"url": "https://x.example/hook", "headers": {"X-" + "a" * 63: "v"}},
        "headers",
        "A header name can be at most 64 characters long.",
    ),
    (
        "webhook",
        {"url": "https://x.example/hook", "headers": {"X-Team": "a", "x-team": "b"}},
        "headers",
        "x-team is given twice (header names ignore case).",
    ),
    *[
        (
            "webhook",
            {"url": "https://x.example/hook", "headers": {name: "v"}},
            "headers",
            f"{name} is a hop-by-hop header, about one connection: it cannot be set.",
        )
        for name in ("Connection", "Transfer-Encoding", "TE", "Upgrade", "Proxy-Authorization")
    ],
    *[
        (
            "webhook",
            {"url": "https://x.example/hook", "headers": {name: "v"}},
            "headers",
            f"{name} is set from the URL and the body when sending: it cannot be set.",
        )
        for name in ("Host", "Content-Length", "content-type", "Content-Encoding", "Expect")
    ],
    *[
        (
            "webhook",
            {"url": "https://x.example/hook", "headers": {name: "v"}},
            "headers",
            f"{name} tells proxies who the client is: it cannot be set.",
        )
        for name in ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP")
    ],
    *[
        (
            "webhook",
            {"url": "https://x.example/hook", "headers": {name: "v"}},
            "headers",
            f"{name} is set by the control plane on every delivery: it cannot be set.",
        )
        for name in ("X-Signature", "X-Signature-Timestamp", "X-Trace-Id", "traceparent")
    ],
    (
        "webhook",
        {"url": "https://x.example/hook", "headers": {"X-Api-Key": 12345}},
        "headers",
        "X-Api-Key: the value must be a string, not a number.",
    ),
    (
        "webhook",
        {"url": "https://x.example/hook", "headers": {"X-Api-Key": API_KEY + "\r\nX-Evil: 1"}},
        "headers",
        "X-Api-Key: a header value cannot contain line breaks.",
    ),
    (
        "webhook",
        {"url": "https://x.example/hook", "headers": {"X-Api-Key": API_KEY + "é"}},
        "headers",
        "X-Api-Key: a header value can only hold visible ASCII characters and spaces.",
    ),
    (
        "webhook",
        {"url": "https://x.example/hook", "headers": {"X-Api-Key": "v" * 1025}},
        "headers",
        "X-Api-Key: a header value can be at most 1024 characters long.",
    ),
    (
        "webhook",
        {"url": "https://x.example/hook", "headers": {"X-Api-Key": MASK}},
        "headers",
        "X-Api-Key: **** is the mask shown for a stored value: enter the value itself.",
    ),
]


@pytest.mark.parametrize(
    ("kind", "raw", "field", "message"),
    REFUSALS,
    ids=[f"{kind}-{field}-{n}" for n, (kind, _, field, _) in enumerate(REFUSALS)],
)
def test_each_bad_configuration_is_refused_naming_its_field(kind, raw, field, message):
    assert refused(kind, raw) == {field: [message]}


def test_an_unknown_kind_is_refused():
    assert refused("sms", {}) == {
        NON_FIELD_ERRORS: [
            "Unknown channel kind 'sms': use one of email, slack, pagerduty, webhook."
        ]
    }


def test_every_problem_is_reported_at_once():
    errors = refused(
        "webhook",
        {"url": "ftp://x", "secret": "short", "headers": {"Host": "x", "X-A": 1}, "extra": 1},
    )
    assert set(errors) == {"url", "secret", "headers", "extra"}
    assert len(errors["headers"]) == 2


def test_the_messages_name_their_field_under_config():
    with pytest.raises(ChannelConfigError) as caught:
        parse_config("email", {"to": ["x"], "cc": []})
    assert caught.value.messages() == [
        "config.cc: Unknown field: channels of kind email take to.",
        "config.to: 'x' is not a valid email address.",
    ]
    with pytest.raises(ChannelConfigError) as caught:
        parse_config("email", "x")
    assert caught.value.messages()[0].startswith("config: A channel of kind email")
    assert str(caught.value) == " ".join(caught.value.messages())


# What is accepted.

ACCEPTED = [
    (
        "email",
        {"to": ["oncall@example.com", "sre@example.org"]},
        EmailConfig(to=("oncall@example.com", "sre@example.org")),
    ),
    ("slack", {"url": SLACK_URL}, SlackConfig(url=SLACK_URL)),
    (ChannelKind.PAGERDUTY, {"routing_key": ROUTING_KEY}, PagerDutyConfig(ROUTING_KEY)),
    (
        "pagerduty",
        {"routing_key": ROUTING_KEY, "url": ""},  # "" means PagerDuty's own endpoint
        PagerDutyConfig(ROUTING_KEY, PAGERDUTY_EVENTS_URL),
    ),
    (
        "pagerduty",
        {"routing_key": ROUTING_KEY, "url": "https://events.eu.pagerduty.com/v2/enqueue"},
        PagerDutyConfig(ROUTING_KEY, "https://events.eu.pagerduty.com/v2/enqueue"),
    ),
    (
        # A receiver on loopback in tests: the address is the outbound guard's to judge.
        "pagerduty",
        {"routing_key": ROUTING_KEY, "url": "http://127.0.0.1:8080/v2/enqueue"},
        PagerDutyConfig(ROUTING_KEY, "http://127.0.0.1:8080/v2/enqueue"),
    ),
    ("webhook", {"url": "https://x.example/hook"}, WebhookConfig("https://x.example/hook")),
    (
        "webhook",
        {
            "url": "http://10.0.0.5/hook",
            "secret": SECRET,
            "headers": {"Authorization": "Bearer abc", "X-Api-Key": API_KEY},
        },
        WebhookConfig(
            "http://10.0.0.5/hook",
            SECRET,
            (("Authorization", "Bearer abc"), ("X-Api-Key", API_KEY)),
        ),
    ),
    ("webhook", {"url": "https://x.example/h", "secret": ""}, WebhookConfig("https://x.example/h")),
]


@pytest.mark.parametrize(("kind", "raw", "expected"), ACCEPTED)
def test_good_configurations_are_read_into_their_dataclass(kind, raw, expected):
    config = parse_config(kind, raw)
    assert config == expected
    assert config.kind == ChannelKind(kind)


@pytest.mark.parametrize(
    ("hosts", "url"),
    [
        (["chat.example.com"], "https://chat.example.com/hooks/abcdefghijklmnop"),
        (["Chat.Example.com "], "https://CHAT.example.com/hooks/abcdefghijklmnop"),
        (["chat.example.com"], "http://chat.example.com:8065/hooks/abcdefghijklmnop"),
        (["chat.example.com:8065"], "https://chat.example.com:8065/hooks/abcdefghijklmnop"),
    ],
)
def test_slack_compatible_hosts_are_allowed_when_listed(hosts, url):
    assert parse_config("slack", {"url": url}, slack_hosts=hosts) == SlackConfig(url)


def test_a_host_listed_with_a_port_allows_that_port_only():
    url = "https://chat.example.com:9999/hooks/abcdefghijklmnop"
    errors = refused("slack", {"url": url}, slack_hosts=["chat.example.com:8065"])
    assert "chat.example.com is not one of the hosts" in errors["url"][0]


# Secrets never show.


@pytest.mark.parametrize(
    ("kind", "raw", "secrets"),
    [
        ("slack", {"url": SLACK_URL + "\n"}, ["XXXXsecretpath"]),
        ("slack", {"url": SLACK_URL.replace("hooks.slack.com", "evil.example")}, ["XXXXsecret"]),
        ("pagerduty", {"routing_key": ROUTING_KEY + "!"}, [ROUTING_KEY]),
        ("webhook", {"url": "x", "secret": SECRET + "\x00"}, [SECRET]),
        ("webhook", {"url": "x", "headers": {"X-Api-Key": API_KEY + "\n"}}, [API_KEY]),
        ("webhook", {"url": "x", "headers": {"Host": API_KEY}}, [API_KEY]),
    ],
)
def test_no_error_message_repeats_a_secret(kind, raw, secrets):
    with pytest.raises(ChannelConfigError) as caught:
        parse_config(kind, raw)
    shown = json.dumps(caught.value.errors) + str(caught.value) + repr(caught.value)
    for secret in secrets:
        assert secret not in shown


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (SlackConfig(SLACK_URL), "SlackConfig(url='https://hooks.slack.com/****Xk9Q')"),
        (
            PagerDutyConfig(ROUTING_KEY),
            f"PagerDutyConfig(routing_key='****CDEF', url='{PAGERDUTY_EVENTS_URL}')",
        ),
        (
            WebhookConfig("https://x.example/h", SECRET, (("X-Api-Key", API_KEY),)),
            "WebhookConfig(url='https://x.example/h', secret=<set>, headers=('X-Api-Key',))",
        ),
        (
            WebhookConfig("https://x.example/h"),
            "WebhookConfig(url='https://x.example/h', secret=<none>, headers=())",
        ),
        (EmailConfig(("a@example.com",)), "EmailConfig(to=('a@example.com',))"),
    ],
)
def test_the_repr_masks_secrets(config, expected):
    assert repr(config) == expected
    assert str(config) == expected
    assert repr([config]) == f"[{expected}]"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (EmailConfig(("a@example.com",)), {"to": ["a@example.com"]}),
        (SlackConfig(SLACK_URL), {"url": "https://hooks.slack.com/****Xk9Q"}),
        (
            SlackConfig("https://chat.example.com/hooks/short"),
            {"url": "https://chat.example.com/****"},  # too short to show any of it
        ),
        (
            SlackConfig("https://chat.example.com/hooks?token=abcdefghijklmnopqrst"),
            {"url": "https://chat.example.com/****qrst"},
        ),
        (
            PagerDutyConfig(ROUTING_KEY),
            {"routing_key": "****CDEF", "url": PAGERDUTY_EVENTS_URL},
        ),
        (
            WebhookConfig("https://x.example/h", SECRET, (("X-Api-Key", API_KEY), ("X-T", "o"))),
            {
                "url": "https://x.example/h",
                "secret_set": True,
                "headers": {"X-Api-Key": MASK, "X-T": MASK},
            },
        ),
        (
            WebhookConfig("https://x.example/h"),
            {"url": "https://x.example/h", "secret_set": False, "headers": {}},
        ),
    ],
)
def test_masked_shows_no_secret(config, expected):
    assert masked(config) == expected


# PATCH: what is left out, or sent back masked, is kept.

WEBHOOK = WebhookConfig(
    "https://x.example/hook", SECRET, (("X-Api-Key", API_KEY), ("X-Team", "ops"))
)
PAGERDUTY = PagerDutyConfig(ROUTING_KEY, "https://events.eu.pagerduty.com/v2/enqueue")


@pytest.mark.parametrize(
    ("old", "patch", "expected"),
    [
        # Left out: kept.
        (PAGERDUTY, {}, PAGERDUTY),
        (
            PagerDutyConfig(ROUTING_KEY),
            {"url": "https://events.pagerduty.com/v2/enqueue?x=1"},
            PagerDutyConfig(ROUTING_KEY, "https://events.pagerduty.com/v2/enqueue?x=1"),
        ),
        (
            WEBHOOK,
            {"url": "https://x.example/other-path"},
            WebhookConfig("https://x.example/other-path", SECRET, WEBHOOK.headers),
        ),
        (WEBHOOK, {"secret": ""}, WebhookConfig(WEBHOOK.url, "", WEBHOOK.headers)),
        (WEBHOOK, {"headers": {}}, WebhookConfig(WEBHOOK.url, SECRET, ())),
        (
            WEBHOOK,
            {"headers": {"X-Api-Key": MASK, "X-Team": "sre"}},
            WebhookConfig(WEBHOOK.url, SECRET, (("X-Api-Key", API_KEY), ("X-Team", "sre"))),
        ),
        (
            WEBHOOK,
            {"headers": {"x-api-key": MASK}},  # names ignore case
            WebhookConfig(WEBHOOK.url, SECRET, (("x-api-key", API_KEY),)),
        ),
        # Sent back as shown: kept.
        (PAGERDUTY, {"routing_key": "****CDEF"}, PAGERDUTY),
        (WEBHOOK, {"secret_set": True}, WEBHOOK),
        (WEBHOOK, {"secret_set": False}, WEBHOOK),  # read-only: ignored either way
        (
            SlackConfig(SLACK_URL),
            {"url": "https://hooks.slack.com/****Xk9Q"},
            SlackConfig(SLACK_URL),
        ),
        # Given: replaced.
        (
            SlackConfig(SLACK_URL),
            {"url": "https://hooks.slack.com/services/T1/B2/newsecretpath"},
            SlackConfig("https://hooks.slack.com/services/T1/B2/newsecretpath"),
        ),
        (
            PAGERDUTY,
            {"routing_key": "N" * 32},
            PagerDutyConfig("N" * 32, PAGERDUTY.url),
        ),
        (
            EmailConfig(("a@example.com",)),
            {"to": ["b@example.com"]},
            EmailConfig(("b@example.com",)),
        ),
    ],
)
def test_a_patch_keeps_the_secrets_it_does_not_give(old, patch, expected):
    assert merge_update(old, patch) == expected


@pytest.mark.parametrize(
    "config",
    [
        EmailConfig(("a@example.com",)),
        SlackConfig(SLACK_URL),
        PAGERDUTY,
        WEBHOOK,
        WebhookConfig("https://x.example/h"),
    ],
)
def test_sending_back_what_was_shown_changes_nothing(config):
    assert merge_update(config, masked(config)) == config


@pytest.mark.parametrize(
    ("old", "patch", "field", "message"),
    [
        (
            PAGERDUTY,
            {"url": "https://receiver.example/v2/enqueue"},
            "routing_key",
            "The routing key goes only to the endpoint it was saved for: enter it again to "
            "send it to the new address.",
        ),
        (
            PAGERDUTY,
            {"url": "", "routing_key": "****CDEF"},  # masked is not given
            "routing_key",
            "The routing key goes only to the endpoint it was saved for: enter it again to "
            "send it to the new address.",
        ),
        (
            WEBHOOK,
            {"url": "https://elsewhere.example/hook", "headers": {}},
            "secret",
            "The secret goes only to the host it was saved for: enter it again (or clear it) "
            "to sign for the new address.",
        ),
        (
            WEBHOOK,
            {"url": "http://x.example/hook", "secret": SECRET},  # http is another origin
            "headers",
            "Header values go only to the host they were saved for: enter them again (or "
            "clear them) to send them to the new address.",
        ),
        (
            WEBHOOK,
            {
                "url": "https://x.example:8443/hook",
                "secret": "",
                "headers": {"X-Api-Key": MASK, "X-Team": "ops"},
            },
            "headers",
            "Header values go only to the host they were saved for: enter them again (or "
            "clear them) to send them to the new address.",
        ),
    ],
)
def test_a_kept_secret_does_not_follow_the_url_to_another_origin(old, patch, field, message):
    with pytest.raises(ChannelConfigError) as caught:
        merge_update(old, patch)
    assert caught.value.errors == {field: [message]}


@pytest.mark.parametrize(
    ("old", "patch"),
    [
        (PAGERDUTY, {"url": "https://receiver.example/v2/enqueue", "routing_key": ROUTING_KEY}),
        (
            WEBHOOK,
            {
                "url": "https://elsewhere.example/hook",
                "secret": SECRET,
                "headers": {"X-Api-Key": API_KEY},
            },
        ),
        (WEBHOOK, {"url": "https://elsewhere.example/hook", "secret": "", "headers": {}}),
    ],
)
def test_a_secret_given_again_may_go_to_the_new_origin(old, patch):
    config = merge_update(old, patch)
    assert config.url == patch["url"]


@pytest.mark.parametrize(
    ("old", "patch", "errors"),
    [
        (
            WEBHOOK,
            ["https://x.example"],
            {
                NON_FIELD_ERRORS: [
                    "An update of a channel of kind webhook takes an object such as "
                    '{"url": "https://example.com/hook"}, not a list.'
                ]
            },
        ),
        (
            WEBHOOK,
            {"extra": 1},
            {"extra": ["Unknown field: channels of kind webhook take url, secret, headers."]},
        ),
        (
            WEBHOOK,
            {"headers": {"X-New": MASK}},  # nothing stored under that name to keep
            {
                "headers": [
                    "X-New: **** is the mask shown for a stored value: enter the value itself."
                ]
            },
        ),
        (
            PAGERDUTY,
            {"routing_key": "****ABCD"},  # not what was shown: not a request to keep
            {
                "routing_key": [
                    "This is the mask shown for a stored key: enter the whole routing key."
                ]
            },
        ),
        (
            EmailConfig(("a@example.com",)),
            {"to": []},
            {"to": ["Give at least one address."]},
        ),
    ],
)
def test_a_bad_patch_is_refused_like_a_bad_configuration(old, patch, errors):
    with pytest.raises(ChannelConfigError) as caught:
        merge_update(old, patch)
    assert caught.value.errors == errors


def test_a_patch_is_checked_against_the_slack_hosts_given():
    old = SlackConfig("https://chat.example.com/hooks/abcdefghijklmnop")
    assert merge_update(old, {}, slack_hosts=["chat.example.com"]) == old
    with pytest.raises(ChannelConfigError):
        merge_update(old, {}, slack_hosts=[])


# Storage.


@pytest.mark.parametrize(
    "config",
    [
        EmailConfig(("a@example.com", "b@example.com")),
        SlackConfig(SLACK_URL),
        PAGERDUTY,
        WEBHOOK,
        WebhookConfig("https://x.example/h"),
    ],
)
def test_configurations_survive_a_json_round_trip(config):
    stored = json.loads(json.dumps(to_json(config)))
    assert from_json(config.kind, stored) == config
    # What is stored is the API's own shape, secrets included.
    assert parse_config(config.kind, stored) == config


def test_from_json_reads_a_channel_a_tightened_policy_would_now_refuse():
    # Saved while chat.example.com was listed in SLACK_WEBHOOK_HOSTS.
    stored = {"url": "https://chat.example.com/hooks/abcdefghijklmnop"}
    assert from_json("slack", stored) == SlackConfig(stored["url"])


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("email", {"to": "a@example.com"}),
        ("email", {"to": []}),
        ("email", None),
        ("slack", {}),
        ("pagerduty", {"url": PAGERDUTY_EVENTS_URL}),
        ("webhook", {"url": "https://x.example", "headers": [["a", "b"]]}),
        ("webhook", {"url": "https://x.example", "headers": {"a": 1}}),
        ("webhook", {"url": "https://x.example", "secret": 5}),
    ],
)
def test_from_json_refuses_what_is_not_a_stored_configuration(kind, data):
    with pytest.raises(ChannelConfigError) as caught:
        from_json(kind, data)
    assert caught.value.errors == {
        NON_FIELD_ERRORS: [
            f"The stored configuration is not that of a channel of kind {kind}: "
            "save the channel again."
        ]
    }
