"""SLO evaluation against a real Prometheus holding series whose every window is known
exactly (tests/slo/series.py: integer counters sampled at every window's start and at
the evaluation time, so increase() does not extrapolate).

The expected SLI, budget remaining and burn rates are worked out here from the
construction in exact fractions, with the formulas of ../shared/PROTOCOLS.md, and the
stored evaluation must match them to 1e-9 relative. The burn-rate figures of the
checkout traffic straddle the factors of a 30-day window and of Europe/Paris's March
2026 (743 hours: the clocks went forward on the 29th), so that which alerts open says
which window length the factors were derived from.

The alert scenarios run over a second stretch of data: a burst whose every boundary
(when each tier starts and stops holding) is derived by hand below and checked against
the construction before the evaluations are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
import requests
from django.urls import reverse

from controlplane.alerting.models import Alert, AlertEvent
from controlplane.catalog.actors import Actor
from controlplane.catalog.models import MetricSource
from controlplane.slo import editing, evaluation
from controlplane.slo.definition import BURN_WINDOWS
from controlplane.slo.models import SLO, SLOEvaluation, SLOSnapshot
from tests.factories import make_runbook, make_slo
from tests.integration.prometheus import PrometheusServer
from tests.services import free_port
from tests.slo.series import Events, Grid, appearance_is_exact, counter, gauge, histogram

pytestmark = pytest.mark.integration

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SLICE = timedelta(minutes=5)
EDITOR = Actor.system("tests.slo")

# --- the exact measurement: a Monday the day after Paris moved to summer time ----------

AT = datetime(2026, 3, 30, 12, 0, tzinfo=UTC)
MONTH_START = datetime(2026, 2, 28, 23, 0, tzinfo=UTC)  # 1 March 00:00 in Paris (UTC+1)
MARCH_IN_PARIS = timedelta(days=31) - HOUR  # 743 h
DATA_START = datetime(2026, 2, 27, tzinfo=UTC)
FINE_SINCE = AT - timedelta(days=3)
GRID = Grid.between(DATA_START, AT, fine_since=FINE_SINCE)
LONG_WINDOWS = {"30d": AT - timedelta(days=30), "month": MONTH_START}

# Bad checkout events in each burn window ending at AT. The traffic there is 100,000
# requests a minute, so at 99.9 % a burn rate of 1 is 100 bad events a minute: 5m and
# 1h burn at 14.87, 30m and 6h at 6.1, 2h at 8 (1d and 3d hold daily spikes too).
# Factors: 30 days 14.4 / 6 / 3 / 1; March in Paris (743 h) 14.86 / 6.19 / 3.10 / 1.03;
# a 31-day month would be 14.88 for the fast tier.
CHECKOUT_BAD = {
    "5m": 7_435,
    "30m": 18_300,
    "1h": 89_220,
    "2h": 96_000,
    "6h": 219_600,
    "1d": 288_000,
    "3d": 540_000,
}


@dataclass(frozen=True)
class Traffic:
    good: Events
    total: Events


def checkout() -> Traffic:
    """Spiky traffic (ten times as much every day 18:00-19:00 UTC, at 0.1 % errors, so
    an average of short ratios would be far from the ratio of the increases), a burst
    of errors on each side of the month's start, then CHECKOUT_BAD."""
    total = Events(DATA_START, AT, per_minute=100_000)
    bad = Events(DATA_START, AT).add(DATA_START, FINE_SINCE, per_minute=20)
    day = DATA_START
    while day + timedelta(hours=19) <= AT:
        spike = day + timedelta(hours=18)
        total.add(spike, spike + HOUR, per_minute=900_000)
        bad.add(spike, spike + HOUR, per_minute=1_000)
        day += DAY
    bad.add(MONTH_START - HOUR, MONTH_START, per_minute=5_000)  # 28 February in Paris
    bad.add(MONTH_START, MONTH_START + HOUR, per_minute=3_000)  # 1 March in Paris
    done, previous = 0, timedelta(0)
    for window, events in CHECKOUT_BAD.items():
        length = BURN_WINDOWS[window]
        bad.add(AT - length, AT - previous, spread=events - done)
        done, previous = events, length
    return Traffic(good=total.minus(bad), total=total)


# Search errors are counted by a counter of their own that appears with the first
# errors, two days before AT (first scraped at 10). At 99.9 % of 50,000 a minute, 50
# bad events a minute burn at 1.
SEARCH_ERRORS_APPEAR = AT - 2 * DAY


def search() -> tuple[Traffic, Events]:
    total = Events(DATA_START, AT, per_minute=50_000)
    bad = Events(DATA_START, AT)
    bad.add(SEARCH_ERRORS_APPEAR - MINUTE, SEARCH_ERRORS_APPEAR, spread=10)
    bad.add(SEARCH_ERRORS_APPEAR, AT - DAY, per_minute=30)
    bad.add(AT - DAY, AT - HOUR, per_minute=60)
    bad.add(AT - HOUR, AT, per_minute=400)
    return Traffic(good=total.minus(bad), total=total), bad


def api_latency() -> dict[str, Events]:
    """Histogram buckets of 20,000 requests a minute; `slow` ones take over 0.25 s (at
    99 %, 200 a minute burn at 1)."""
    total = Events(DATA_START, AT, per_minute=20_000)
    slow = Events(DATA_START, AT).add(DATA_START, FINE_SINCE, per_minute=20)
    done, previous = 0, timedelta(0)
    for window, events in {
        "5m": 2_000,
        "30m": 18_000,
        "1h": 36_000,
        "2h": 48_000,
        "6h": 108_000,
        "1d": 288_000,
        "3d": 432_000,
    }.items():
        length = BURN_WINDOWS[window]
        slow.add(AT - length, AT - previous, spread=events - done)
        done, previous = events, length
    very_slow = Events(DATA_START, AT)
    very_slow.counts = [count // 4 for count in slow.counts]
    half_slow = Events(DATA_START, AT)
    half_slow.counts = [count - count // 2 for count in slow.counts]
    return {
        "0.1": Events(DATA_START, AT, per_minute=10_000),
        "0.25": total.minus(slow),
        "0.5": total.minus(half_slow),
        "1": total.minus(very_slow),
        "+Inf": total,
    }


def backup_success(at: datetime) -> datetime:
    """The last successful backup at or before `at`: every 6 hours on the hour (00, 06,
    12, 18 UTC), except that none succeeded from 10 March 06:00 to 11 March 18:00, nor
    after 29 March 06:00."""
    scheduled = at.replace(hour=at.hour - at.hour % 6, minute=0)
    outage = (datetime(2026, 3, 10, 6, tzinfo=UTC), datetime(2026, 3, 12, tzinfo=UTC))
    if outage[0] <= scheduled < outage[1]:
        return outage[0] - 6 * HOUR
    last = datetime(2026, 3, 29, 6, tzinfo=UTC)
    return min(scheduled, last)


def backup_age(at: datetime) -> float:
    return (at - backup_success(at)).total_seconds()


def measured_series():
    traffic = checkout()
    bad = traffic.total.minus(traffic.good)
    search_traffic, search_bad = search()
    series = {
        **counter(
            "http_requests_total", {"service": "checkout", "code": "200"}, traffic.good, GRID
        ),
        **counter("http_requests_total", {"service": "checkout", "code": "500"}, bad, GRID),
        **counter("search_requests_total", {"service": "search"}, search_traffic.total, GRID),
        **counter(
            "search_errors_total", {"service": "search"}, search_bad, GRID, SEARCH_ERRORS_APPEAR
        ),
        **histogram(
            "http_server_request_duration_seconds", {"service": "api"}, api_latency(), GRID
        ),
        **gauge("backup_age_seconds", {"job": "backup"}, backup_age, GRID.times),
    }
    return series, {"http_server_request_duration_seconds": "histogram"}


# --- what each SLO should measure, from the construction ---------------------------------


@dataclass(frozen=True)
class Kind:
    """One SLO of the table: its fields, and (good, total) over (since, until]."""

    fields: dict
    counts: Callable[[datetime, datetime], tuple[int, int]]


def _events(traffic: Traffic) -> Callable[[datetime, datetime], tuple[int, int]]:
    return lambda since, until: (
        traffic.good.increase(since, until),
        traffic.total.increase(since, until),
    )


def _slices(since: datetime, until: datetime) -> tuple[int, int]:
    """Slices of 5 minutes ending in (since, until], good when the backup is younger
    than a day at the slice's end."""
    ends = [since + SLICE * k for k in range(1, (until - since) // SLICE + 1)]
    return sum(backup_age(end) < 86_400 for end in ends), len(ends)


def _latency(since: datetime, until: datetime) -> tuple[int, int]:
    buckets = api_latency()
    return buckets["0.25"].increase(since, until), buckets["+Inf"].increase(since, until)


KINDS = {
    "ratio-good": Kind(
        {
            "good": 'http_requests_total{service="checkout",code!~"5.."}',
            "bad": "",
            "total": 'http_requests_total{service="checkout"}',
            "objective": 99.9,
        },
        _events(checkout()),
    ),
    "ratio-bad": Kind(
        {
            "bad": 'search_errors_total{service="search"}',
            "total": 'search_requests_total{service="search"}',
            "objective": 99.9,
        },
        _events(search()[0]),
    ),
    "latency": Kind(
        {
            "kind": SLO.Kind.LATENCY,
            "bad": "",
            "total": "",
            "metric": "http_server_request_duration_seconds",
            "selector": 'service="api"',
            "threshold": 0.25,
            "objective": 99.0,
        },
        _latency,
    ),
    "timeslices": Kind(
        {
            "kind": SLO.Kind.THRESHOLD,
            "bad": "",
            "total": "",
            "expr": 'backup_age_seconds{job="backup"}',
            "op": "<",
            "threshold": 86_400,
            "budgeting": SLO.Budgeting.TIMESLICES,
            "slice_length": SLICE,
            "objective": 90.0,
        },
        _slices,
    ),
}


@dataclass(frozen=True)
class Expected:
    sli: Fraction
    remaining: Fraction
    events: int
    burn_rates: dict[str, Fraction]


def expected(kind: Kind, objective: float, since: datetime, at: datetime) -> Expected:
    """PROTOCOLS.md: budget B = 1 - objective, error ratio r = bad / total, burn rate
    r / B, budget remaining (B - r) / B, all over the construction's counts."""
    budget = 1 - Fraction(str(objective)) / 100

    def ratio(window_start: datetime) -> tuple[Fraction, int]:
        good, total = kind.counts(window_start, at)
        return Fraction(total - good, total), total

    long_ratio, events = ratio(since)
    return Expected(
        sli=1 - long_ratio,
        remaining=(budget - long_ratio) / budget,
        events=events,
        burn_rates={name: ratio(at - length)[0] / budget for name, length in BURN_WINDOWS.items()},
    )


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    measured, types = measured_series()
    server = PrometheusServer.backfilled(
        tmp_path_factory.mktemp("prometheus"), {**measured, **burst_series()}, types
    )
    try:
        version = requests.get(f"{server.url}/api/v1/status/buildinfo", timeout=10).json()
        version = version["data"]["version"]
        assert version.startswith("2."), (
            f"Prometheus {version}: tests/slo/series.py relies on Prometheus 2's closed "
            "ranges for increase() to be exact (see its docstring)"
        )
        yield server
    finally:
        server.stop()


@pytest.fixture
def source(org, prometheus):
    return MetricSource.objects.create(
        organization=org, name="prom", url=prometheus.url, timeout=10
    )


def evaluate_at(slo: SLO, at: datetime) -> SLOEvaluation:
    [outcome] = evaluation.evaluate_claimed([slo.pk], at=at)
    assert outcome.result == "ok", SLOEvaluation.objects.get(slo=slo).last_error
    return SLOEvaluation.objects.get(slo=slo)


def open_tiers(slo: SLO) -> set[str]:
    return {
        alert.labels["burn_tier"]
        for alert in Alert.objects.filter(slo=slo).exclude(state=Alert.State.RESOLVED)
    }


# --- exact SLI, budget and burn rates --------------------------------------------------------


def test_the_construction_burns_where_the_factors_are_tested():
    """The checkout figures are what the factor tests below rely on (hand-derived in
    CHECKOUT_BAD's comment), checked here against the series themselves."""
    burn = expected(KINDS["ratio-good"], 99.9, AT - timedelta(days=30), AT).burn_rates
    assert burn["5m"] == burn["1h"] == Fraction("14.87")
    assert burn["30m"] == burn["6h"] == Fraction("6.1")
    assert burn["2h"] == 8
    # The slow ticket tier (1d > 3) holds for neither; the long one (3d > 1) for both.
    assert burn["1d"] < 3
    assert burn["3d"] > Fraction(743, 720)
    # The search errors' counter appears within the long windows: increase() then
    # extrapolates to its zero point, which is exact here (tests/slo/series.py).
    _, search_bad = search()
    for since in (*LONG_WINDOWS.values(), AT - 3 * DAY):
        assert appearance_is_exact(search_bad, GRID, SEARCH_ERRORS_APPEAR, since, AT)
    GRID.check(AT, *LONG_WINDOWS.values(), *(AT - length for length in BURN_WINDOWS.values()))


@pytest.mark.django_db
@pytest.mark.parametrize("window", ["30d", "month"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_evaluation_stores_the_exact_sli_budget_and_burn_rates(org, source, kind, window):
    slo = make_slo(
        org,
        f"{kind}-{window}",
        source=source,
        window=window,
        time_zone="Europe/Paris",
        **KINDS[kind].fields,
    )
    since = LONG_WINDOWS[window]
    want = expected(KINDS[kind], slo.objective, since, AT)

    got = evaluate_at(slo, AT)

    assert got.last_error == ""
    assert (got.window_start, got.window_end) == (since, AT)
    assert got.evaluated_at == AT
    assert got.events == want.events
    assert got.sli == pytest.approx(float(want.sli), rel=1e-9, abs=0)
    assert got.budget_remaining == pytest.approx(float(want.remaining), rel=1e-9, abs=0)
    assert set(got.burn_rates) == set(BURN_WINDOWS)
    for name, burn in want.burn_rates.items():
        assert got.burn_rates[name] == pytest.approx(float(burn), rel=1e-9, abs=1e-12), name
    snapshot = SLOSnapshot.objects.get(slo=slo)
    assert (snapshot.at, snapshot.sli, snapshot.budget_remaining, snapshot.burn_rates) == (
        AT,
        got.sli,
        got.budget_remaining,
        got.burn_rates,
    )


@pytest.mark.django_db
def test_a_calendar_month_starts_at_local_midnight_and_its_factors_use_its_743_hours(org, source):
    """March 2026 in Paris starts at 28 February 23:00 UTC and lasts 743 hours. The
    errors of 28 February 23:00-24:00 UTC count; those an hour earlier do not. The fast
    tier (14.87 burning) holds under 14.86 (743 h) and would not under 14.88 (744 h);
    the medium one (6.1) does not under 6.19 and would under 6.0 (720 h)."""
    fields = KINDS["ratio-good"].fields
    month = make_slo(
        org, "checkout-month", source=source, window="month", time_zone="Europe/Paris", **fields
    )
    rolling = make_slo(org, "checkout-30d", source=source, window="30d", **fields)

    got = evaluate_at(month, AT)

    assert got.window_start == datetime(2026, 3, 1, tzinfo=ZoneInfo("Europe/Paris"))
    assert got.window_start == MONTH_START
    assert got.status == "breaching"
    # The long ticket tier holds as well (see the construction test), held back by the page.
    assert open_tiers(month) == {"fast"}
    want = expected(KINDS["ratio-good"], 99.9, MONTH_START, AT)
    # Exhaustion at the 1h burn rate, over the month's own length.
    until = MARCH_IN_PARIS * float(want.remaining / want.burn_rates["1h"])
    assert got.time_to_exhaustion.total_seconds() == pytest.approx(until.total_seconds(), rel=1e-9)
    # The errors just before the month's start are outside it, those just after inside.
    utc_month = KINDS["ratio-good"].counts(datetime(2026, 3, 1, tzinfo=UTC), AT)
    assert got.sli != pytest.approx(utc_month[0] / utc_month[1], rel=1e-9)

    evaluate_at(rolling, AT)
    assert open_tiers(rolling) == {"fast", "medium"}


@pytest.mark.django_db
def test_a_bad_counter_that_does_not_exist_yet_counts_no_errors(org, source):
    slo = make_slo(org, "search", source=source, **KINDS["ratio-bad"].fields)
    before = SEARCH_ERRORS_APPEAR - HOUR

    got = evaluate_at(slo, before)

    assert got.status == "ok"
    assert got.sli == 1.0
    assert got.budget_remaining == 1.0
    assert got.burn_rates == dict.fromkeys(BURN_WINDOWS, 0.0)
    assert got.events == search()[0].total.increase(before - timedelta(days=30), before)


@pytest.mark.django_db
def test_no_series_for_the_total_is_no_data_with_a_reason(org, source):
    slo = make_slo(org, "nothing", source=source, bad="", good="nothing_total", total="none_total")

    got = evaluate_at(slo, AT)

    assert got.status == "no_data"
    assert got.sli is None
    assert "no series" in got.last_error


# --- alerts over a burst -------------------------------------------------------------------

# From B - 20 days to B + 6 hours, 100,000 requests a minute without errors, except a
# burst burning at 25 (2,500 bad a minute at 99.9 %) from B to B + 240 minutes. The
# series are sampled each minute from B - 3 days (every 5 minutes before), so each
# burn window of an evaluation at a whole minute starts at a sample; the SLO window
# starts before the first sample, 0, which Prometheus does not extrapolate either.
# Twenty days of history keep the budget from running out (status `exhausted` would
# take precedence). `quiet` is the same shape at 40 requests a minute (10 bad a minute
# burn at 25 at 99 %).
B = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
BURST = 240
HISTORY = B - 20 * DAY
BURST_GRID = Grid.between(HISTORY, B + 6 * HOUR, fine_since=B - 3 * DAY)


def burst(per_minute: int, bad_per_minute: int) -> Traffic:
    total = Events(HISTORY, B + 6 * HOUR, per_minute=per_minute)
    bad = Events(HISTORY, B + 6 * HOUR).add(B, B + BURST * MINUTE, per_minute=bad_per_minute)
    return Traffic(good=total.minus(bad), total=total)


BUSY = burst(100_000, 2_500)
QUIET = burst(40, 10)


def burst_series():
    series = {}
    for name, traffic in (("busy", BUSY), ("quiet", QUIET)):
        bad = traffic.total.minus(traffic.good)
        series.update(
            counter("orders_total", {"shop": name, "code": "200"}, traffic.good, BURST_GRID)
        )
        series.update(counter("orders_total", {"shop": name, "code": "500"}, bad, BURST_GRID))
    return series


def burst_slo(org, source, slug="orders", shop="busy", **fields) -> SLO:
    return make_slo(
        org,
        slug,
        source=source,
        good=f'orders_total{{shop="{shop}",code="200"}}',
        bad="",
        total=f'orders_total{{shop="{shop}"}}',
        **fields,
    )


def after(minutes: int) -> datetime:
    return B + minutes * MINUTE


# Hand-derived from the burst at 25 (30-day factors 14.4, 6, 3, 1), minutes after B:
#   fast   (1h > 14.4, 5m):  1h burns 25 m / 60 > 14.4 from m = 35 (34: 14.17, 35: 14.58);
#                            after the burst 5m burns 25 (5 - k) / 5: 15 at k = 2, 10 at 3.
#   medium (6h > 6, 30m):    25 m / 360 > 6 from m = 87 (86: 5.97, 87: 6.04);
#                            after, 30m burns 25 (30 - k) / 30: 6.67 at k = 22, 5.83 at 23.
#   slow   (1d > 3, 2h):     25 m / 1440 > 3 from m = 173 (172: 2.986, 173: 3.003);
#                            after, 2h burns 25 (120 - k) / 120: 3.125 at 105, 2.92 at 106.
#   long   (3d > 1, 6h):     25 m / 4320 > 1 from m = 173; still holding at m = 346.
# Tickets hold from 173 but a page is open until the medium tier stops, at 240 + 23.
STEPS = [
    (34, set(), "ok"),
    (35, {"fast"}, "breaching"),
    (86, {"fast"}, "breaching"),
    (87, {"fast", "medium"}, "breaching"),
    (172, {"fast", "medium"}, "breaching"),
    (173, {"fast", "medium"}, "breaching"),  # both tickets hold: inhibited
    (BURST + 2, {"fast", "medium"}, "breaching"),
    (BURST + 3, {"medium"}, "breaching"),
    (BURST + 22, {"medium"}, "breaching"),
    (BURST + 23, {"slow", "long"}, "warning"),  # the page resolved: the tickets open
    (BURST + 105, {"slow", "long"}, "warning"),
    (BURST + 106, {"long"}, "warning"),
]
HOLDING = {  # tier: minutes after B at which it holds, from the comment above
    "fast": lambda m: 35 <= m <= BURST + 2,
    "medium": lambda m: 87 <= m <= BURST + 22,
    "slow": lambda m: 173 <= m <= BURST + 105,
    "long": lambda m: 173 <= m <= BURST + 106,
}
TIERS = {  # tier: (long window, short window, 30-day factor)
    "fast": ("1h", "5m", 14.4),
    "medium": ("6h", "30m", 6),
    "slow": ("1d", "2h", 3),
    "long": ("3d", "6h", 1),
}


def test_the_burst_holds_each_tier_exactly_where_the_steps_say():
    """The hand-derived boundaries, against the series: a tier holds when both its
    windows' error ratios exceed factor * B (ratios of the construction's counts)."""
    for minute, _, _ in STEPS:
        at = after(minute)
        for tier, (long, short, factor) in TIERS.items():
            burns = []
            for window in (long, short):
                since = at - BURN_WINDOWS[window]
                good, total = BUSY.good.increase(since, at), BUSY.total.increase(since, at)
                burns.append(Fraction(total - good, total) / Fraction(1, 1000))
            assert all(burn > factor for burn in burns) == HOLDING[tier](minute), (minute, tier)


@pytest.mark.django_db
def test_burn_rate_alerts_open_and_resolve_exactly_at_the_right_evaluations(org, source):
    slo = burst_slo(org, source)

    for minute, tiers, status in STEPS:
        got = evaluate_at(slo, after(minute))
        assert (minute, got.status) == (minute, status)
        assert (minute, open_tiers(slo)) == (minute, tiers)

    alerts = {a.labels["burn_tier"]: a for a in Alert.objects.filter(slo=slo)}
    assert set(alerts) == {"fast", "medium", "slow", "long"}  # one alert per tier, no reopening
    for tier, alert in alerts.items():
        long, short, _ = TIERS[tier]
        severity = "page" if tier in {"fast", "medium"} else "ticket"
        assert alert.labels == {
            "slo": "orders",
            "severity": severity,
            "burn_tier": tier,
            "long_window": long,
            "short_window": short,
        }
        assert alert.severity == ("critical" if severity == "page" else "warning")
        assert alert.runbook_url == reverse("runbooks:page", args=["slo-burn-rate"])
    assert alerts["fast"].started_at != alerts["fast"].resolved_at
    assert alerts["long"].state == Alert.State.FIRING


@pytest.mark.django_db
def test_an_slo_names_its_own_runbook_and_its_labels_go_on_its_alerts(org, source):
    runbook = make_runbook(org, "orders-burning")
    slo = burst_slo(org, source, runbook=runbook, labels={"team": "shop"})

    evaluate_at(slo, after(35))

    [alert] = Alert.objects.filter(slo=slo)
    assert alert.runbook_url == reverse("runbooks:page", args=["orders-burning"])
    assert alert.labels["team"] == "shop"
    assert alert.labels["slo"] == "orders"


@pytest.mark.django_db
def test_low_traffic_keeps_the_alerts_quiet_and_resolves_those_open(org, source):
    # 40 requests a minute since HISTORY: 1,155,480 in the SLO window at B + 87 minutes.
    minimum = 2_000_000
    slo = burst_slo(org, source, slug="quiet", shop="quiet", objective=99.0, min_events=minimum)

    got = evaluate_at(slo, after(87))
    assert got.status == "insufficient_traffic"
    assert got.events == 40 * (20 * 1440 + 87)
    assert got.burn_rates["5m"] == pytest.approx(25)  # it burns as fast as the busy one
    assert open_tiers(slo) == set()

    # The same SLO without a minimum pages; raised again, it resolves its pages.
    slo.min_events = 0
    editing.save(slo, EDITOR)
    evaluate_at(slo, after(87))
    assert open_tiers(slo) == {"fast", "medium"}
    slo.min_events = minimum
    editing.save(slo, EDITOR)
    assert evaluate_at(slo, after(88)).status == "insufficient_traffic"
    assert open_tiers(slo) == set()


@pytest.mark.django_db
def test_a_source_outage_is_no_data_and_resolves_nothing(org, source):
    slo = burst_slo(org, source)
    before = evaluate_at(slo, after(87))
    assert open_tiers(slo) == {"fast", "medium"}
    url = source.url
    MetricSource.objects.filter(pk=source.pk).update(url=f"http://127.0.0.1:{free_port()}")

    # At BURST + 3 the fast tier would resolve on real data: an outage must not.
    [outcome] = evaluation.evaluate_claimed([slo.pk], at=after(BURST + 3))

    assert outcome.result == "source_error"
    got = SLOEvaluation.objects.get(slo=slo)
    assert got.status == "no_data"
    assert got.last_error
    assert open_tiers(slo) == {"fast", "medium"}
    # What was last measured stays on show; the snapshot says no data.
    assert (got.sli, got.budget_remaining, got.burn_rates) == (
        before.sli,
        before.budget_remaining,
        before.burn_rates,
    )
    latest = SLOSnapshot.objects.filter(slo=slo).latest("at")
    assert (latest.status, latest.sli, latest.burn_rates) == ("no_data", None, {})

    MetricSource.objects.filter(pk=source.pk).update(url=url)
    assert evaluate_at(slo, after(BURST + 3)).status == "breaching"
    assert open_tiers(slo) == {"medium"}


@pytest.mark.django_db
def test_the_evaluation_row_its_snapshot_and_its_alert_carry_the_evaluation_trace_id(
    org, source, spans
):
    slo = burst_slo(org, source)

    evaluate_at(slo, after(35))

    [span] = [s for s in spans.get_finished_spans() if s.name == "slo.evaluate"]
    trace_id = format(span.context.trace_id, "032x")
    assert span.attributes["slo.slug"] == "orders"
    assert span.attributes["slo.status"] == "breaching"
    assert SLOEvaluation.objects.get(slo=slo).trace_id == trace_id
    assert SLOSnapshot.objects.get(slo=slo).trace_id == trace_id
    [alert] = Alert.objects.filter(slo=slo)
    assert alert.trace_id == trace_id
    assert alert.events.get(kind="opened").trace_id == trace_id


@pytest.mark.django_db
def test_turning_pages_off_then_tickets_off_then_the_slo_off_retires_its_alerts(org, source):
    slo = burst_slo(org, source)
    evaluate_at(slo, after(173))
    assert open_tiers(slo) == {"fast", "medium"}  # the tickets held back

    slo.page = False
    editing.save(slo, EDITOR)
    assert open_tiers(slo) == set()
    # No page open now: the tickets that hold open at the next evaluation.
    evaluate_at(slo, after(174))
    assert open_tiers(slo) == {"slow", "long"}

    slo.ticket = False
    editing.save(slo, EDITOR)
    assert open_tiers(slo) == set()
    evaluate_at(slo, after(175))
    assert open_tiers(slo) == set()

    slo.page = slo.ticket = True
    editing.save(slo, EDITOR)
    evaluate_at(slo, after(176))
    assert open_tiers(slo) == {"fast", "medium"}
    slo.enabled = False
    editing.save(slo, EDITOR)
    assert open_tiers(slo) == set()
    assert evaluation.due_slo_ids(after(177) + 2 * DAY) == []
    notes = set(
        AlertEvent.objects.filter(alert__slo=slo, kind=AlertEvent.Kind.RESOLVED).values_list(
            "note", flat=True
        )
    )
    assert notes == {
        "page alerts turned off for this SLO",
        "ticket alerts turned off for this SLO",
        "SLO orders disabled",
    }
