import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from controlplane.slo.definition import BURN_WINDOWS
from controlplane.slo.maths import (
    LONG,
    Tier,
    alert_threshold,
    budget_remaining,
    burn_rate,
    error_budget,
    error_ratio,
    holds,
    ideal_remaining,
    sli,
    status,
    tiers,
    time_to_exhaustion,
    timeslice_sli,
    verdict,
)

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
EPS = math.ulp(1.0)  # 2.2e-16

# The Workbook's table (PROTOCOLS, "SLO maths") and its scaling to other windows:
# factor = budget spent * window length / long window.
FACTORS = [
    (30 * DAY, [14.4, 6.0, 3.0, 1.0]),
    (28 * DAY, [13.44, 5.6, 2.8, 0.28 / 0.3]),
    (7 * DAY, [3.36, 1.4, 0.7, 0.7 / 3]),
    (31 * DAY, [14.88, 6.2, 3.1, 3.1 / 3]),  # a 31-day calendar month
    (743 * HOUR, [14.86, 743 * 0.05 / 6, 7.43 / 2.4, 7.43 / 7.2]),  # March in Paris
]


@pytest.mark.parametrize(("length", "factors"), FACTORS)
def test_tier_factors_scale_with_the_window_length(length, factors):
    found = tiers(length)
    assert [t.factor for t in found] == pytest.approx(factors, rel=1e-15)
    assert [(t.name, t.severity, t.long_window, t.short_window, t.budget_spent) for t in found] == [
        ("fast", "page", "1h", "5m", 0.02),
        ("medium", "page", "6h", "30m", 0.05),
        ("slow", "ticket", "1d", "2h", 0.10),
        ("long", "ticket", "3d", "6h", 0.10),
    ]


@pytest.mark.parametrize(
    ("length", "factors"),
    [(30 * DAY, [14.4, 6.0, 3.0, 1.0]), (28 * DAY, [13.44, 5.6, 2.8, 0.9333333333333333])],
)
def test_the_workbook_factors_are_exactly_its_figures(length, factors):
    # Not 0.05 * 112 = 5.6000000000000005: the exported rules show the Workbook's numbers.
    assert [t.factor for t in tiers(length)] == factors


@pytest.mark.parametrize("length", [timedelta(0), -DAY])
def test_a_window_of_zero_has_no_tiers(length):
    with pytest.raises(ValueError, match="longer than zero"):
        tiers(length)


@pytest.mark.parametrize(
    ("objective", "budget"),
    [(99.9, 0.001), (99.0, 0.01), (95.0, 0.05), (50.0, 0.5), (0.1, 0.999)],
)
def test_error_budget_is_one_minus_the_objective(objective, budget):
    assert error_budget(objective) == pytest.approx(budget, rel=1e-12)


@pytest.mark.parametrize(
    ("objective", "budget"),
    [(99.9, 0.001), (99.95, 0.0005), (99.99, 0.0001), (99.999, 0.00001), (99, 0.01), (75.5, 0.245)],
)
def test_error_budget_is_the_float_nearest_the_true_budget(objective, budget):
    # 1 - 99.9 / 100 would be 0.00099999999999989: a ratio of 1 in 1,000 would burn
    # faster than 1 and overspend.
    assert error_budget(objective) == budget
    assert budget_remaining(budget, objective) == 0.0
    assert burn_rate(budget, objective) == 1.0


@pytest.mark.parametrize("objective", [0, 100, 100.5, -1, math.nan])
def test_error_budget_refuses_an_objective_outside_zero_to_a_hundred(objective):
    with pytest.raises(ValueError, match="strictly between 0 and 100"):
        error_budget(objective)


@pytest.mark.parametrize(
    ("good", "total", "ratio", "indicator"),
    [
        (999, 1000, 0.001, 0.999),
        (1000, 1000, 0.0, 1.0),
        (0, 1000, 1.0, 0.0),
        (0, 0, None, None),  # no traffic
        (1000.4, 1000, 0.0, 1.0),  # increase() extrapolated good past total: clamped
        (-0.5, 1000, 1.0, 0.0),
        (5, -1, None, None),
    ],
)
def test_error_ratio_and_sli(good, total, ratio, indicator):
    assert error_ratio(good, total) == pytest.approx(ratio)
    assert sli(good, total) == pytest.approx(indicator)
    assert timeslice_sli(good, total) == sli(good, total)


@pytest.mark.parametrize(("good", "total"), [(math.nan, 10), (1, math.inf), (1, math.nan)])
def test_counts_must_be_finite(good, total):
    with pytest.raises(ValueError, match="finite"):
        error_ratio(good, total)


@pytest.mark.parametrize(
    ("ratio", "objective", "remaining", "burn"),
    [
        (None, 99.9, 1.0, None),  # no traffic: the budget is whole
        (0.0, 99.9, 1.0, 0.0),
        (0.0005, 99.9, 0.5, 0.5),
        (0.001, 99.9, 0.0, 1.0),
        (0.0144, 99.9, -13.4, 14.4),  # overspent: not clamped
        (1.0, 99.0, -99.0, 100.0),
    ],
)
def test_budget_remaining_and_burn_rate(ratio, objective, remaining, burn):
    assert budget_remaining(ratio, objective) == pytest.approx(remaining, abs=1e-9)
    assert burn_rate(ratio, objective) == pytest.approx(burn)


@pytest.mark.parametrize(
    ("remaining", "burn", "window", "expected"),
    [
        (1.0, 1.0, 30 * DAY, 30 * DAY),
        (1.0, 14.4, 30 * DAY, 50 * HOUR),  # the fast tier spends 2% an hour
        (0.5, 2.0, 28 * DAY, 7 * DAY),
        (0.25, 1.0, 7 * DAY, 42 * HOUR),
        (0.0, 2.0, 30 * DAY, timedelta(0)),
        (-0.3, 2.0, 30 * DAY, timedelta(0)),
        (-0.3, None, 30 * DAY, timedelta(0)),  # already spent, whatever the rate now
        (1.0, None, 30 * DAY, None),  # no traffic
        (1.0, 0.0, 30 * DAY, None),  # no errors
        (1.0, 1e-300, 30 * DAY, None),  # beyond what a timedelta holds: never
    ],
)
def test_time_to_exhaustion(remaining, burn, window, expected):
    found = time_to_exhaustion(remaining, burn, window)
    if expected is None:
        assert found is None
    else:
        assert abs(found - expected) <= timedelta(microseconds=1)


# Burn-rate conditions at their boundary.


@pytest.mark.parametrize("tier", tiers(30 * DAY))
def test_a_tier_holds_only_strictly_above_factor_times_budget(tier):
    at = alert_threshold(tier, 99.9)
    assert at == tier.factor * 0.001
    above = math.nextafter(at, math.inf)
    both = {tier.long_window: above, tier.short_window: above}
    assert holds(tier, both, 99.9)
    assert not holds(tier, {tier.long_window: at, tier.short_window: above}, 99.9)
    assert not holds(tier, {tier.long_window: above, tier.short_window: at}, 99.9)
    assert not holds(tier, {tier.long_window: above, tier.short_window: None}, 99.9)
    assert not holds(tier, {tier.long_window: above}, 99.9)


@pytest.mark.parametrize(
    ("by_window", "holding"),
    [
        ({"1h": 0.02, "5m": 0.02}, ["fast"]),  # 20x the budget, only over the last hour
        ({"1h": 0.02, "5m": 0.0}, []),  # it stopped: the short window resets the page
        ({"6h": 0.007, "30m": 0.007, "1h": 0.007, "5m": 0.007}, ["medium"]),
        ({"1d": 0.004, "2h": 0.004, "3d": 0.004, "6h": 0.004}, ["slow", "long"]),
        ({"3d": 0.0015, "6h": 0.0015}, ["long"]),
        ({"3d": 0.001, "6h": 0.001}, []),  # burning exactly the budget is not an alert
    ],
)
def test_which_tiers_hold(by_window, holding):
    assert [t.name for t in tiers(30 * DAY) if holds(t, by_window, 99.9)] == holding


# Status and verdict.

PAGE = Tier("fast", "page", "1h", "5m", 0.02, 14.4)
TICKET = Tier("slow", "ticket", "1d", "2h", 0.1, 3.0)


@pytest.mark.parametrize(
    ("measured", "events", "min_events", "remaining", "holding", "expected"),
    [
        (False, 0, 100, -1.0, [PAGE], "no_data"),
        (True, 99, 100, -1.0, [PAGE], "insufficient_traffic"),
        (True, 99.5, 100, 0.5, [], "insufficient_traffic"),
        (True, 100, 100, 0.0, [PAGE], "exhausted"),
        (True, 100, 100, -0.1, [], "exhausted"),
        (True, 100, 100, 0.2, [TICKET, PAGE], "breaching"),
        (True, 100, 100, 0.2, [TICKET], "warning"),
        (True, 100, 100, 0.2, [], "ok"),
        (True, 0, 0, 1.0, [], "ok"),  # no traffic, no minimum
    ],
)
def test_status_precedence(measured, events, min_events, remaining, holding, expected):
    assert status(measured, events, min_events, remaining, holding) == expected


def everywhere(good, total):
    """The same counts in the SLO window and every burn-rate window."""
    return {LONG: (good, total), **dict.fromkeys(BURN_WINDOWS, (good, total))}


def test_verdict_of_a_fast_burn():
    counts = everywhere(999, 1000) | {"1h": (980, 1000), "5m": (970, 1000)}
    found = verdict(99.9, 30 * DAY, counts, min_events=100)
    assert found.status == "exhausted"  # 0.1% errors over 30 days is the whole budget
    assert [t.name for t in found.holding] == ["fast"]  # and the page still holds

    counts[LONG] = (999_500, 1_000_000)
    found = verdict(99.9, 30 * DAY, counts, min_events=100)
    assert found.status == "breaching"
    assert found.sli == pytest.approx(0.9995)
    assert found.budget_remaining == pytest.approx(0.5)
    assert found.events == 1_000_000
    assert found.burn_rates["1h"] == pytest.approx(20.0)
    assert found.burn_rates["5m"] == pytest.approx(30.0)
    assert found.burn_rates["3d"] == pytest.approx(1.0)
    # Half the budget at 20 budgets per 30 days: 0.5 * 720 h / 20 = 18 h.
    assert abs(found.time_to_exhaustion - 18 * HOUR) < timedelta(milliseconds=1)


def test_verdict_of_low_traffic_is_quiet():
    found = verdict(99.9, 30 * DAY, everywhere(50, 99), min_events=100)
    assert found.status == "insufficient_traffic"
    assert found.holding == ()  # the alerts stay quiet (and resolve)
    assert found.budget_remaining < 0  # the numbers are still told
    assert found.burn_rates["1h"] == pytest.approx(49 / 99 / 0.001)


def test_verdict_without_a_measurement_is_no_data():
    counts = {LONG: None, "1h": (0, 100), "5m": (0, 10)}
    found = verdict(99.9, 30 * DAY, counts, min_events=0)
    assert found.status == "no_data"
    assert (found.holding, found.sli, found.budget_remaining, found.events) == (
        (),
        None,
        None,
        None,
    )
    assert found.time_to_exhaustion is None
    assert found.burn_rates["1h"] == pytest.approx(1000.0)  # what was measured is told
    assert found.burn_rates["6h"] is None


def test_verdict_without_traffic_keeps_the_whole_budget():
    found = verdict(99.9, 30 * DAY, everywhere(0, 0))
    assert found.status == "ok"
    assert found.budget_remaining == 1.0
    assert found.sli is None
    assert found.time_to_exhaustion is None
    assert dict(found.burn_rates) == dict.fromkeys(BURN_WINDOWS)


def test_verdict_names_every_burn_window_even_unmeasured():
    found = verdict(99.0, 7 * DAY, {LONG: (10, 10)})
    assert list(found.burn_rates) == ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
    with pytest.raises(TypeError):
        found.burn_rates["1h"] = 1.0  # type: ignore[index]


def test_verdict_refuses_a_bad_objective_even_without_data():
    with pytest.raises(ValueError, match="objective"):
        verdict(100, 30 * DAY, {})


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (datetime(2026, 3, 1, tzinfo=UTC), 1.0),
        (datetime(2026, 3, 16, tzinfo=UTC), 0.5),
        (datetime(2026, 3, 31, tzinfo=UTC), 0.0),
        (datetime(2026, 2, 1, tzinfo=UTC), 1.0),  # before the window: clamped
        (datetime(2026, 5, 1, tzinfo=UTC), 0.0),  # after it
    ],
)
def test_ideal_remaining_falls_evenly_over_the_window(at, expected):
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)
    assert ideal_remaining(start, end, at) == pytest.approx(expected)


def test_ideal_remaining_needs_a_window():
    at = datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="end after it starts"):
        ideal_remaining(at, at, at)


# Properties.

objectives = st.floats(min_value=0.01, max_value=99.999)
error_ratios = st.floats(min_value=0.0, max_value=1.0)
maybe_ratios = st.one_of(st.none(), error_ratios)
totals = st.integers(min_value=1, max_value=10**9)
lengths = st.integers(min_value=1, max_value=400 * 24 * 60).map(lambda m: timedelta(minutes=m))


@given(objectives, totals)
def test_budget_remaining_is_one_at_zero_errors(objective, total):
    assert budget_remaining(error_ratio(total, total), objective) == 1.0


@given(objectives)
def test_budget_remaining_is_zero_when_the_error_ratio_is_the_budget(objective):
    assert budget_remaining(error_budget(objective), objective) == 0.0


@given(st.integers(1, 99_999), st.sampled_from([1, 10, 100, 1000]), st.integers(1, 10**4))
def test_budget_remaining_is_exactly_zero_at_a_decimal_objective(thousandths, scale, per):
    # Objectives as people write them (99.9, 99.95, 75.125), bad events exactly the
    # budget: bad / total and 1 - objective / 100 are one rational, rounded once each.
    objective = thousandths / 1000
    total = 100_000 * scale * per
    bad = (100_000 - thousandths) * scale * per
    assert budget_remaining(error_ratio(total - bad, total), objective) == 0.0


@given(totals, st.data())
def test_budget_remaining_is_zero_at_the_objective_within_rounding(total, data):
    # Any objective, even one no one would type (100 * 2 / 3): objective = 100 * good /
    # total rounds, so B is only near bad / total.
    assume(total > 1)
    bad = data.draw(st.integers(min_value=1, max_value=total - 1))
    objective = 100 * (total - bad) / total
    assume(0 < objective < 100)
    # The objective's float is within half an ulp of 100 * good / total, so B is within
    # about one ulp of 1 of the true budget, and (B - r) / B is zero within a few ulps of
    # 1 over B: the tolerance is 4 * EPS / B (9e-13 at 99.9).
    budget = error_budget(objective)
    assert abs(budget_remaining(error_ratio(total - bad, total), objective)) <= 4 * EPS / budget


@given(objectives, totals, st.data())
def test_budget_remaining_strictly_falls_as_errors_rise(objective, total, data):
    fewer = data.draw(st.integers(min_value=0, max_value=total - 1))
    more = data.draw(st.integers(min_value=fewer + 1, max_value=total))
    assert budget_remaining(error_ratio(total - more, total), objective) < budget_remaining(
        error_ratio(total - fewer, total), objective
    )


@given(maybe_ratios, objectives)
def test_budget_remaining_is_one_minus_the_burn_rate(ratio, objective):
    burn = burn_rate(ratio, objective)
    expected = 1.0 if burn is None else 1 - burn
    # Two roundings apart at the scale of the burn rate.
    assert budget_remaining(ratio, objective) == pytest.approx(
        expected, rel=0, abs=4 * EPS * max(1.0, burn or 0)
    )


@given(lengths)
def test_a_burn_rate_of_one_spends_the_budget_exactly_over_the_window(window):
    assert time_to_exhaustion(1.0, 1.0, window) == window
    # And a burn rate of one measured from counts at the objective does too.
    budget = error_budget(99.9)
    assert time_to_exhaustion(1.0, burn_rate(budget, 99.9), window) == window


@given(
    st.floats(min_value=1e-6, max_value=1.0),
    st.floats(min_value=1e-3, max_value=1e3),
    lengths,
)
def test_spending_at_the_burn_rate_for_the_time_to_exhaustion_spends_what_remains(
    remaining, burn, window
):
    until = time_to_exhaustion(remaining, burn, window)
    # burn budgets per window for until / window windows spend what remains, up to the
    # microsecond a timedelta rounds to.
    spent_in = remaining * window.total_seconds() / burn
    assert until.total_seconds() == pytest.approx(spent_in, rel=1e-12, abs=1e-6)


@given(st.sampled_from(tiers(30 * DAY)), objectives, error_ratios, error_ratios, st.data())
def test_holds_is_monotone_in_both_windows(tier, objective, long, short, data):
    higher_long = data.draw(st.floats(min_value=long, max_value=1.0))
    higher_short = data.draw(st.floats(min_value=short, max_value=1.0))
    before = holds(tier, {tier.long_window: long, tier.short_window: short}, objective)
    after = holds(tier, {tier.long_window: higher_long, tier.short_window: higher_short}, objective)
    assert after or not before


@given(st.sampled_from(tiers(28 * DAY)), objectives, error_ratios, error_ratios)
def test_holds_is_exactly_the_exported_comparison(tier, objective, long, short):
    threshold = tier.factor * error_budget(objective)
    by_window = {tier.long_window: long, tier.short_window: short}
    assert holds(tier, by_window, objective) == (long > threshold and short > threshold)


tier_sets = st.lists(st.sampled_from([PAGE, TICKET]), max_size=3)
remainings = st.floats(min_value=-100, max_value=1, allow_nan=False)


@given(st.booleans(), st.floats(0, 1e6), st.integers(0, 1000), remainings, tier_sets)
def test_status_is_the_first_rule_that_applies(measured, events, min_events, remaining, holding):
    rules = [
        (not measured, "no_data"),
        (events < min_events, "insufficient_traffic"),
        (remaining <= 0, "exhausted"),
        (PAGE in holding, "breaching"),
        (TICKET in holding, "warning"),
        (True, "ok"),
    ]
    expected = next(name for applies, name in rules if applies)
    assert status(measured, events, min_events, remaining, holding) == expected


window_counts = st.one_of(
    st.none(),
    totals.flatmap(lambda t: st.tuples(st.integers(0, t), st.just(t))),
    st.just((0, 0)),
)


@given(
    objectives,
    st.sampled_from([7 * DAY, 28 * DAY, 30 * DAY, 743 * HOUR]),
    st.fixed_dictionaries({LONG: window_counts, **dict.fromkeys(BURN_WINDOWS, window_counts)}),
    st.integers(0, 1000),
)
def test_verdict_agrees_with_its_parts(objective, length, counts, min_events):
    found = verdict(objective, length, counts, min_events)
    by_window = {w: None if c is None else error_ratio(*c) for w, c in counts.items()}
    for window in BURN_WINDOWS:
        assert found.burn_rates[window] == burn_rate(by_window[window], objective)
    if counts[LONG] is None:
        assert (found.status, found.holding, found.budget_remaining) == ("no_data", (), None)
        return
    _, total = counts[LONG]
    assert found.budget_remaining == budget_remaining(by_window[LONG], objective)
    assert found.events == total
    if total < min_events:
        assert found.holding == ()
    else:
        assert found.holding == tuple(t for t in tiers(length) if holds(t, by_window, objective))
    assert found.status == status(True, total, min_events, found.budget_remaining, found.holding)
    severities = {t.severity for t in found.holding}
    assert (found.status == "breaching") <= ("page" in severities)
    assert (found.status == "warning") <= (severities == {"ticket"})
