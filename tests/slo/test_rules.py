"""The Prometheus rule export: its structure, and promtool's verdict on it.

`promtool check rules` must accept every export and `promtool test rules` must pass
the generated test file; the test file must also be able to fail: a rule file with a
wrong factor, or alerts silenced by a low-traffic gate the scenario did not expect,
makes promtool report the alerts that did not fire as the test said.
"""

from __future__ import annotations

import io
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from controlplane.slo import maths, queries, rules
from controlplane.slo.definition import Definition, Latency, Ratio, Rpo, Threshold, Window
from tests.factories import make_runbook, make_slo
from tests.integration.prometheus import require_prometheus

AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # March 2026: 743 h in Europe/Paris
THIRTY_DAYS = timedelta(days=30)

GOOD = Ratio(
    total='http_requests_total{job="api"}', good='http_requests_total{job="api",code="200"}'
)
BAD = Ratio(total="jobs_total", bad="job_failures_total")
REGEX = Ratio(total='rpc_total{job="web"}', bad='rpc_total{job="web",code=~"5.."}')
LATENCY = Latency("http_request_duration_seconds", 0.25, "0.25", 'route="/x"')
BACKUP = Threshold("time() - backup_last_success_timestamp_seconds", "<", 86400.0)


def slo(slug: str, indicator, **fields) -> Definition:
    fields.setdefault("window", Window.named("30d"))
    fields.setdefault("objective", 99.9)
    return Definition(
        slug=slug, name=fields.pop("name", slug.title()), indicator=indicator, **fields
    )


def groups_by_name(doc: dict) -> dict[str, dict]:
    return {group["name"]: group for group in doc["groups"]}


def alerts(group: dict) -> list[dict]:
    return [rule for rule in group["rules"] if "alert" in rule]


# Structure.


def test_occurrences_slo_records_events_ratios_and_alerts():
    definition = slo("api", GOOD, labels={"team": "web"}, min_events=1000)
    doc = rules.rule_groups(
        [("acme", definition)], AT, runbook_urls={("acme", "api"): "https://cp/runbooks/x/"}
    )
    groups = groups_by_name(doc)
    assert list(groups) == ["slo:acme/api:events", "slo:acme/api:burn-rate", "slo:acme/api:meta"]
    labels = {
        "slo": "api",
        "organization": "acme",
        "slo_revision": definition.revision,
        "team": "web",
    }

    events = groups["slo:acme/api:events"]
    assert events["interval"] == "5m"
    assert events["rules"] == [
        {
            "record": "slo:good_events:increase5m",
            "expr": queries.good_events(GOOD, "5m"),
            "labels": labels,
        },
        {
            "record": "slo:total_events:increase5m",
            "expr": queries.total_events(GOOD, "5m"),
            "labels": labels,
        },
    ]

    burn = groups["slo:acme/api:burn-rate"]
    assert "interval" not in burn  # the global evaluation interval
    recorded = [rule for rule in burn["rules"] if "record" in rule]
    assert [r["record"] for r in recorded] == [
        f"slo:sli_error:ratio_increase{w}" for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
    ]
    assert recorded[2]["expr"] == queries.error_ratio(GOOD, "1h")
    assert all(r["labels"] == labels for r in recorded)

    found = alerts(burn)
    assert [
        (
            a["labels"]["burn_tier"],
            a["labels"]["severity"],
            a["labels"]["long_window"],
            a["labels"]["short_window"],
        )
        for a in found
    ] == [
        ("fast", "page", "1h", "5m"),
        ("medium", "page", "6h", "30m"),
        ("slow", "ticket", "1d", "2h"),
        ("long", "ticket", "3d", "6h"),
    ]
    fast = found[0]
    assert fast["alert"] == "SLOBurnRate"
    assert fast["labels"] == {
        **labels,
        "severity": "page",
        "burn_tier": "fast",
        "long_window": "1h",
        "short_window": "5m",
    }
    threshold = repr(14.4 * maths.error_budget(99.9))
    assert threshold == "0.014400000000000001"
    assert fast["expr"] == (
        f'slo:sli_error:ratio_increase1h{{slo="api",organization="acme"}} > {threshold}\n'
        "and\n"
        f'slo:sli_error:ratio_increase5m{{slo="api",organization="acme"}} > {threshold}\n'
        "and on (slo, organization)\n"
        "sum by (slo, organization) (sum_over_time("
        'slo:total_events:increase5m{slo="api",organization="acme"}'
        "[4w1d23h59m59s999ms:5m])) >= 1000"
    )
    assert set(fast["annotations"]) == {"summary", "description", "runbook_url"}
    assert fast["annotations"]["runbook_url"] == "https://cp/runbooks/x/"
    assert "14.4 times" in fast["annotations"]["summary"]
    assert "2% of the 30d budget goes in 1h" in fast["annotations"]["description"]


def test_thresholds_are_the_maths_floats():
    definition = slo("api", BAD, window=Window.named("28d"), objective=99.5)
    found = alerts(
        groups_by_name(rules.rule_groups([("acme", definition)], AT))["slo:acme/api:burn-rate"]
    )
    for alert, tier in zip(found, maths.tiers(timedelta(days=28)), strict=True):
        assert f"> {maths.alert_threshold(tier, 99.5)!r}\n" in alert["expr"]
    assert "sum by" not in found[0]["expr"]  # no minimum of events, no gate


def test_only_enabled_severities_are_exported():
    page_only = slo("page", BAD, ticket=False)
    silent = slo("silent", BAD, page=False, ticket=False)
    groups = groups_by_name(rules.rule_groups([("acme", page_only), ("acme", silent)], AT))
    assert [a["labels"]["burn_tier"] for a in alerts(groups["slo:acme/page:burn-rate"])] == [
        "fast",
        "medium",
    ]
    recorded = [r["record"] for r in groups["slo:acme/page:burn-rate"]["rules"] if "record" in r]
    assert recorded == [f"slo:sli_error:ratio_increase{w}" for w in ("5m", "30m", "1h", "6h")]
    # No alert, no burn-rate group; the 5-minute recordings stay for the fast path, the
    # constants for the dashboards.
    assert "slo:acme/silent:burn-rate" not in groups
    assert "slo:acme/silent:events" in groups
    assert "slo:acme/silent:meta" in groups


def test_calendar_factors_use_the_period_current_at_export():
    definition = slo("cal", BAD, window=Window.named("month", "Europe/Paris"))
    doc = rules.rule_groups([("acme", definition)], AT)
    march = timedelta(hours=743)  # 31 days less the hour DST takes on 29 March 2026
    fast = alerts(doc["groups"][1])[0]
    assert f"> {maths.alert_threshold(maths.tiers(march)[0], 99.9)!r}\n" in fast["expr"]
    notes = rules.notes([("acme", definition)], AT)
    assert any("acme/cal: calendar month in Europe/Paris" in n and "(743 h)" in n for n in notes)
    assert any("Export again when the next period starts" in n for n in notes)


def test_time_slices_record_slices_and_leave_out_partial_tiers():
    definition = slo(
        "backup",
        BACKUP,
        budgeting="timeslices",
        slice_length=timedelta(minutes=10),
        min_events=12,
    )
    groups = groups_by_name(rules.rule_groups([("acme", definition)], AT))
    slices = groups["slo:acme/backup:slices"]
    assert slices["interval"] == "10m"
    good = queries.slice_good(definition)
    assert [(r["record"], r["expr"]) for r in slices["rules"]] == [
        ("slo:good_slices:count", good),
        ("slo:slices:count", f"count({good})"),
    ]
    burn = groups["slo:acme/backup:burn-rate"]
    # 10m slices do not fit a 5m window: the fast tier is left out, and said so.
    assert [a["labels"]["burn_tier"] for a in alerts(burn)] == ["medium", "slow", "long"]
    ratio_30m = next(r for r in burn["rules"] if r.get("record") == "slo:sli_error:ratio_slices30m")
    assert ratio_30m["expr"] == (
        '1 - sum_over_time(slo:good_slices:count{slo="backup",organization="acme"}[29m59s999ms])'
        ' / sum_over_time(slo:slices:count{slo="backup",organization="acme"}[29m59s999ms])'
    )
    assert alerts(burn)[0]["expr"].endswith(
        'sum by (slo, organization) (sum_over_time(slo:slices:count{slo="backup",'
        'organization="acme"}[4w1d23h59m59s999ms])) >= 12'
    )
    notes = rules.notes([("acme", definition)], AT)
    assert any("no fast (1h/5m) alert" in n and "10m slices" in n for n in notes)


@pytest.mark.parametrize(
    ("definitions", "message"),
    [
        ([("acme", slo("a", BAD, labels={"severity": "x"}))], "labels the rules set: severity"),
        ([("acme", slo("a", BAD, labels={"__name__": "x"}))], "labels the rules set"),
        ([("acme", slo("a", BAD)), ("acme", slo("a", GOOD))], "given twice"),
        ([("acme", slo("a", BACKUP))], "needs time slices"),
    ],
)
def test_refused(definitions, message):
    with pytest.raises(ValueError, match=message):
        rules.rule_groups(definitions, AT)


def test_names_are_text_not_templates():
    definition = slo("api", BAD, name="API {{ $value }}")
    fast = alerts(rules.rule_groups([("acme", definition)], AT)["groups"][1])[0]
    assert fast["annotations"]["summary"].startswith('SLO API {{ "{{" }} $value }}')


def test_dump_writes_notes_as_comments_and_reads_back():
    doc = rules.rule_groups([("acme", slo("api", GOOD, min_events=5))], AT)
    text = rules.dump(doc, ["first line", "second\nthird"])
    assert text.startswith("# first line\n# second\n# third\ngroups:\n")
    assert yaml.safe_load(text) == doc
    assert "expr: |-\n" in text  # multi-line alert conditions as literal blocks


def meta_values(doc: dict, name: str) -> dict[str, float]:
    """{record: the number inside vector()} of the SLO's meta group."""
    group = groups_by_name(doc)[f"slo:acme/{name}:meta"]
    found = {}
    for rule in group["rules"]:
        number = re.fullmatch(r"vector\((.*)\)", rule["expr"])
        assert number, rule["expr"]
        found[rule["record"]] = float(number.group(1))
    return found


@pytest.mark.parametrize(
    ("definition", "objective", "budget", "min_events", "window"),
    [
        # 99.9 / 100 is 0.9990000000000001: the objective as written, divided exactly.
        (slo("api", GOOD, min_events=1000), 0.999, 0.001, 1000, THIRTY_DAYS),
        (slo("api", BAD, objective=99.95, window=Window.named("28d")), 0.9995, 0.0005, 0, None),
        (
            slo("api", BACKUP, budgeting="timeslices", objective=99, min_events=12),
            0.99,
            0.01,
            12,
            THIRTY_DAYS,
        ),
        # March 2026 in Paris, as the gate reads it; an SLO without alerts has them too.
        (
            slo("api", BAD, window=Window.named("month", "Europe/Paris"), page=False, ticket=False),
            0.999,
            0.001,
            0,
            timedelta(hours=743),
        ),
    ],
)
def test_meta_records_the_slos_objective_budget_minimum_and_window(
    definition, objective, budget, min_events, window
):
    doc = rules.rule_groups([("acme", definition)], AT)
    meta = groups_by_name(doc)["slo:acme/api:meta"]
    assert "interval" not in meta  # the global evaluation interval: never stale
    first = doc["groups"][0]["rules"][0]  # the events or slices recording
    assert all(rule["labels"] == first["labels"] for rule in meta["rules"])
    assert meta_values(doc, "api") == {
        "slo:objective:ratio": objective,
        "slo:error_budget:ratio": budget,
        "slo:min_events:count": min_events,
        "slo:window:seconds": (window or timedelta(days=28)).total_seconds(),
    }
    # The float the alerts' thresholds multiply, as the control plane computes it.
    assert meta_values(doc, "api")["slo:error_budget:ratio"] == definition.budget
    assert repr(meta_values(doc, "api")["slo:objective:ratio"]) == repr(objective)


def test_rpo_and_rto_get_no_meta():
    rpo = slo(
        "rpo", Rpo(job="backup", target=timedelta(hours=24)), budgeting="timeslices", objective=99
    )
    doc = rules.rule_groups([("acme", rpo), ("acme", slo("api", BAD))], AT)
    assert [g["name"] for g in doc["groups"] if g["name"].endswith(":meta")] == [
        "slo:acme/api:meta"
    ]


def test_prometheus_records_the_meta_values(tmp_path):
    """promtool evaluates the exported file with no input series at all: the constants
    are recorded, with the SLO's labels, and no alert fires from them."""
    definitions = [
        slo("regex", REGEX, objective=99.5, min_events=50, labels={"team": "web"}),
        slo("month", BAD, window=Window.named("month", "Europe/Paris")),
    ]
    pairs = [("acme", d) for d in definitions]
    rule_path = tmp_path / "slo-rules.yml"
    rule_path.write_text(rules.dump(rules.rule_groups(pairs, AT)))
    regex, month = definitions

    def labels(definition: Definition) -> str:
        own = f'organization="acme",slo="{definition.slug}",slo_revision="{definition.revision}"'
        return own + "".join(f',{k}="{v}"' for k, v in sorted(definition.labels.items()))

    expected = [
        ("slo:objective:ratio", regex, 0.995),
        ("slo:error_budget:ratio", regex, 0.005),
        ("slo:min_events:count", regex, 50),
        ("slo:window:seconds", regex, 30 * 86400),
        ("slo:objective:ratio", month, 0.999),
        ("slo:min_events:count", month, 0),
        ("slo:window:seconds", month, 743 * 3600),
    ]
    test = {
        "rule_files": [rule_path.name],
        "evaluation_interval": "5m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [],
                "promql_expr_test": [
                    {
                        "expr": f'{name}{{slo="{definition.slug}"}}',
                        "eval_time": "10m",
                        "exp_samples": [
                            {"labels": f"{name}{{{labels(definition)}}}", "value": value}
                        ],
                    }
                    for name, definition, value in expected
                ],
                "alert_rule_test": [{"eval_time": "10m", "alertname": "SLOBurnRate"}],
            }
        ],
    }
    test_path = tmp_path / "meta.test.yml"
    test_path.write_text(yaml.safe_dump(test))
    tested = promtool("test", "rules", str(test_path))
    assert tested.returncode == 0, tested.stdout + tested.stderr


# The test file: which inputs, and why.


def names_of(doc: dict) -> list[str]:
    return [test["name"] for test in doc["tests"]]


@pytest.mark.parametrize(
    ("definitions", "synthetic"),
    [
        ([slo("api", GOOD)], True),
        ([slo("api", BAD)], True),
        ([slo("api", LATENCY)], True),
        ([slo("api", Ratio(total="t_total", bad='{__name__="t_total",code=""}'))], True),
        ([slo("api", Ratio(total='t_total{a="1"}', bad='t_total{a="1"}'))], False),
        ([slo("api", Ratio(total='t_total{a="1"}', bad='t_total{b="2"}'))], True),
        ([slo("api", REGEX)], False),
        ([slo("api", BACKUP, budgeting="timeslices")], False),
        ([slo("api", BAD, budgeting="timeslices", slice_target=0.9)], False),
        # Another SLO reading the same counters would fire in this SLO's tests.
        ([slo("api", GOOD), slo("web", Ratio(total="http_requests_total", bad="e_total"))], False),
        (
            [slo("api", GOOD), slo("web", Ratio(total='http_requests_total{job="web"}', bad="e"))],
            True,
        ),
        (
            [
                slo("api", BAD),
                slo("web", Threshold("rate(jobs_total[5m])", ">", 1), budgeting="timeslices"),
            ],
            False,
        ),
    ],
)
def test_inputs_are_raw_counters_only_when_they_can_be_synthesised(definitions, synthetic):
    doc = rules.rule_tests([("acme", d) for d in definitions], "r.yml", AT)
    first = [t for t in doc["tests"] if t["name"].startswith("acme/api ")]
    assert len(first) == 4
    expected = "from synthetic counters" if synthetic else "from recorded error ratios"
    assert all(expected in t["name"] for t in first), [t["name"] for t in first]


def test_synthetic_series_sum_to_the_scenario():
    doc = rules.rule_tests([("acme", slo("api", GOOD))], "r.yml", AT)
    fast = doc["tests"][0]
    series = [s["series"] for s in fast["input_series"]]
    # Good events under the good selector, the rest under the total's only.
    assert series == [
        'http_requests_total{code="200",job="api"}',
        'http_requests_total{code="200_other",job="api"}',
    ]
    assert doc["rule_files"] == ["r.yml"]
    assert doc["evaluation_interval"] == "5m"
    checks = fast["alert_rule_test"]
    fast_firing = [
        any(a["exp_labels"]["burn_tier"] == "fast" for a in c["exp_alerts"]) for c in checks
    ]
    assert fast_firing == [False, True, False]
    before, fired, _ = (parse_minutes(c["eval_time"]) for c in checks)
    assert fired - before == 5  # the evaluation just before the first that fires


def parse_minutes(text: str) -> int:
    from controlplane.promql.durations import parse_duration

    return int(parse_duration(text) / timedelta(minutes=1))


# promtool's verdict.


def promtool(*args: str) -> subprocess.CompletedProcess:
    _, path = require_prometheus()
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=600)


def export(directory: Path, definitions, rule_text: str | None = None) -> tuple[Path, Path]:
    rule_path, test_path = directory / "slo-rules.yml", directory / "slo-rules.test.yml"
    pairs = [("acme", d) for d in definitions]
    rule_path.write_text(
        rule_text or rules.dump(rules.rule_groups(pairs, AT), rules.notes(pairs, AT))
    )
    test_path.write_text(rules.dump(rules.rule_tests(pairs, rule_path.name, AT)))
    return rule_path, test_path


EXPORTED = [
    slo("good", GOOD, labels={"team": "web"}, min_events=100_000, name="API {{ good }}"),
    slo("bad", BAD),
    slo("regex", REGEX, objective=99.5, min_events=50),
    slo("latency", LATENCY, window=Window.named("28d"), objective=99),
    slo(
        "month",
        Ratio(total="orders_total", bad='orders_total{status="failed"}'),
        window=Window.named("month", "Europe/Paris"),
    ),
    slo("backup", BACKUP, budgeting="timeslices", objective=99, min_events=10),
    # 14.4 times a 10% budget is more than all events: the fast tier cannot fire.
    slo("lenient", Ratio(total="batch_total", bad="batch_failures_total"), objective=90),
    slo(
        "rpc",
        Ratio(total="grpc_total", bad='grpc_total{code="13"}'),
        budgeting="timeslices",
        slice_target=0.95,
        slice_length=timedelta(minutes=10),
    ),
]


def test_promtool_accepts_the_export_and_its_tests(tmp_path):
    rule_path, test_path = export(tmp_path, EXPORTED)
    checked = promtool("check", "rules", str(rule_path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(test_path))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    names = names_of(yaml.safe_load(test_path.read_text()))
    assert len(names) == 4 * 7 + 3  # the 10m-slice SLO has no fast tier
    # Both paths ran: raw counters for plain selectors, recorded ratios for the rest.
    assert sum("from synthetic counters" in n for n in names) == 4 * 5
    assert sum("from recorded error ratios" in n for n in names) == 4 * 2 + 3
    assert any(
        n.startswith("acme/lenient fast") and "out of reach, quiet even at 100% errors" in n
        for n in names
    )


def tampered(definitions, replace) -> str:
    pairs = [("acme", d) for d in definitions]
    text = rules.dump(rules.rule_groups(pairs, AT))
    for old, new in replace:
        assert f"> {old!r}\n" in text
        text = text.replace(f"> {old!r}\n", f"> {new!r}\n")
    return text


WRONG = [slo("bad", BAD), slo("regex", REGEX)]
BUDGET = maths.error_budget(99.9)


@pytest.mark.parametrize(
    "replace",
    [
        # The medium tier's factor on the fast one: pages from a much smaller burn.
        [(14.4 * BUDGET, 6 * BUDGET)],
        # 20% off, either way.
        [(14.4 * BUDGET, 14.4 * 0.8 * BUDGET)],
        [(14.4 * BUDGET, 14.4 * 1.2 * BUDGET)],
        # A 30-day SLO alerting with 28-day factors.
        [
            (maths.alert_threshold(a, 99.9), maths.alert_threshold(b, 99.9))
            for a, b in zip(maths.tiers(THIRTY_DAYS), maths.tiers(timedelta(days=28)), strict=True)
        ],
    ],
    ids=["fast factor 6", "fast factor -20%", "fast factor +20%", "28-day factors"],
)
def test_a_wrong_factor_fails_the_generated_tests(tmp_path, replace):
    rule_path, test_path = export(tmp_path, WRONG, tampered(WRONG, replace))
    assert promtool("check", "rules", str(rule_path)).returncode == 0
    tested = promtool("test", "rules", str(test_path))
    assert tested.returncode != 0
    assert "alertname: SLOBurnRate" in tested.stdout + tested.stderr


def test_the_untampered_rules_pass_the_same_tests(tmp_path):
    _, test_path = export(tmp_path, WRONG, tampered(WRONG, []))
    tested = promtool("test", "rules", str(test_path))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_low_traffic_keeps_the_alerts_quiet(tmp_path):
    """Rules whose gate asks for more events than the scenario has, against tests
    written for no gate: the alerts the tests expect do not fire."""
    quiet = slo("bad", BAD, ticket=False, min_events=10**12)
    loud = slo("bad", BAD, ticket=False)
    pairs = [("acme", quiet)]
    _, test_path = export(tmp_path, [loud], rules.dump(rules.rule_groups(pairs, AT)))
    tested = promtool("test", "rules", str(test_path))
    assert tested.returncode != 0
    said = tested.stdout + tested.stderr
    assert "exp:" in said
    assert "got:[]" in said


def test_slices_are_recorded_once_per_slice(tmp_path):
    """The slices group as Prometheus runs it (every slice length): the good-slice
    count, the slices measured and the share of bad slices over a window."""
    definition = slo("backup", BACKUP, budgeting="timeslices", objective=99)
    rule_path = tmp_path / "slo-rules.yml"
    rule_path.write_text(rules.dump(rules.rule_groups([("acme", definition)], AT)))
    selector = '{slo="backup",organization="acme"}'
    own = f'organization="acme",slo="backup",slo_revision="{definition.revision}"'
    # The last good backup ages a minute a minute; from minute 1440 on it is a day old.
    test = {
        "rule_files": [rule_path.name],
        "evaluation_interval": "5m",
        "group_eval_order": ["slo:acme/backup:slices", "slo:acme/backup:burn-rate"],
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": "backup_last_success_timestamp_seconds",
                        "values": "0+0x1500",
                    },
                ],
                "promql_expr_test": [
                    # At 1455m the 30m window (1425m, 1455m] holds 6 slices, ending at
                    # 1430 ... 1455; those ending at 1440 and later are bad (age >= 86400).
                    {
                        "expr": f"sum_over_time(slo:good_slices:count{selector}[29m59s])",
                        "eval_time": "1455m",
                        "exp_samples": [{"labels": "{" + own + "}", "value": 2}],
                    },
                    {
                        "expr": f"slo:sli_error:ratio_slices30m{selector}",
                        "eval_time": "1455m",
                        "exp_samples": [
                            {
                                "labels": "slo:sli_error:ratio_slices30m{" + own + "}",
                                "value": 1 - 2 / 6,
                            }
                        ],
                    },
                    {
                        "expr": f"slo:slices:count{selector}",
                        "eval_time": "1455m",
                        "exp_samples": [
                            {
                                "labels": "slo:slices:count{" + own + "}",
                                "value": 1,
                            }
                        ],
                    },
                ],
            }
        ],
    }
    test_path = tmp_path / "slices.test.yml"
    test_path.write_text(yaml.safe_dump(test))
    tested = promtool("test", "rules", str(test_path))
    assert tested.returncode == 0, tested.stdout + tested.stderr


# The command.


@pytest.mark.django_db
def test_command_writes_both_files_and_promtool_passes_them(org, other_org, tmp_path):
    runbook = make_runbook(org, "api-down")
    make_slo(org, "api-availability", bad='http_requests_total{code="500"}', runbook=runbook)
    make_slo(
        org,
        "api-latency",
        kind="latency",
        bad="",
        total="",
        metric="http_request_duration_seconds",
        selector='route="/x"',
        threshold=0.25,
        bucket_le="0.25",
        objective=99,
        window="28d",
        ticket=False,
    )
    make_slo(org, "off", enabled=False)
    make_slo(other_org, "elsewhere")
    out = io.StringIO()
    call_command("export_prometheus_rules", "--org", "acme", "--output", str(tmp_path), stdout=out)

    rule_path, test_path = tmp_path / "slo-rules.yml", tmp_path / "slo-rules.test.yml"
    said = out.getvalue()
    assert f"{rule_path}: 2 SLOs, 6 groups, 23 recording rules, 6 alerts." in said
    assert f"{test_path}: 6 promtool tests." in said
    doc = yaml.safe_load(rule_path.read_text())
    names = [g["name"] for g in doc["groups"]]
    assert names == [
        "slo:acme/api-availability:events",
        "slo:acme/api-availability:burn-rate",
        "slo:acme/api-availability:meta",
        "slo:acme/api-latency:events",
        "slo:acme/api-latency:burn-rate",
        "slo:acme/api-latency:meta",
    ]
    availability = alerts(doc["groups"][1])[0]["annotations"]["runbook_url"]
    latency = alerts(doc["groups"][4])[0]["annotations"]["runbook_url"]
    assert availability.endswith("/runbooks/api-down/")
    assert latency.endswith("/runbooks/slo-burn-rate/")
    assert yaml.safe_load(test_path.read_text())["rule_files"] == ["slo-rules.yml"]

    checked = promtool("check", "rules", str(rule_path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(test_path))
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.django_db
def test_command_exports_every_organisation_without_org(org, other_org, tmp_path):
    make_slo(org, "a")
    make_slo(other_org, "b")
    call_command("export_prometheus_rules", "--output", str(tmp_path), stdout=io.StringIO())
    doc = yaml.safe_load((tmp_path / "slo-rules.yml").read_text())
    assert {g["name"] for g in doc["groups"]} >= {"slo:acme/a:events", "slo:globex/b:events"}


@pytest.mark.django_db
def test_command_refuses_an_unknown_organisation(org, tmp_path):
    with pytest.raises(CommandError, match="No organisation with the slug 'nope'"):
        call_command("export_prometheus_rules", "--org", "nope", "--output", str(tmp_path))
    assert not (tmp_path / "slo-rules.yml").exists()
