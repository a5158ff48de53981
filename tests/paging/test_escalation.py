import ast
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.paging import escalation
from controlplane.paging.escalation import (
    EVENTS,
    LONGEST_WAIT,
    MOST_REPEATS,
    MOST_STEPS,
    NON_FIELD_ERRORS,
    SHORTEST_REMINDER,
    AlertFacts,
    NotificationKey,
    PolicyError,
    PolicySnapshot,
    StepSnapshot,
    decide,
    first_due,
    schedule,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)

SLACK, EMAIL, PD, HOOK = 1, 2, 3, 4
IDS = {"slack": SLACK, "email": EMAIL, "pd": PD, "hook": HOOK}
NAMES = {number: name for name, number in IDS.items()}


def policy(*steps: tuple[float, str], **options) -> PolicySnapshot:
    """policy((0, "slack email"), (5, "pd"), repeat=1): steps as (minutes, channel names);
    channel "pd" is PagerDuty's."""
    options.setdefault("pagerduty_channels", frozenset({PD}))
    return PolicySnapshot(
        version=1,
        steps=tuple(
            StepSnapshot(minutes * MINUTE, tuple(IDS[name] for name in names.split()))
            for minutes, names in steps
        ),
        **options,
    )


def label(key: NotificationKey) -> str:
    """'trigger 1/0 email' is step 1 of loop 0 to the email channel; 'reminder 2 slack',
    'acknowledge pd', 'resolve email'."""
    channel = NAMES[key.channel]
    if key.event == "trigger":
        return f"trigger {key.step}/{key.loop} {channel}"
    if key.event == "reminder":
        return f"reminder {key.reminder} {channel}"
    return f"{key.event} {channel}"


def at(minutes: float) -> datetime:
    return T0 + minutes * MINUTE


def facts(
    now: float,
    *,
    acked: float | None = None,
    resolved: float | None = None,
    silenced: tuple[float, float] | None = None,
    is_test: bool = False,
) -> AlertFacts:
    """The alert as seen at minute `now`: acknowledged at minute `acked` and so on,
    silenced from and until the minutes of `silenced`."""
    return AlertFacts(
        opened_at=T0,
        acknowledged_at=at(acked) if acked is not None and acked <= now else None,
        resolved_at=at(resolved) if resolved is not None and resolved <= now else None,
        silenced=silenced is not None and silenced[0] <= now < silenced[1],
        is_test=is_test,
    )


def run(snapshot: PolicySnapshot, ticks, **timeline) -> dict[float, list[str]]:
    """Tick at each minute of `ticks`, writing what is due; what each tick wrote (ticks
    that wrote nothing left out)."""
    sent: set[NotificationKey] = set()
    written = {}
    for minute in ticks:
        decision = decide(snapshot, facts(minute, **timeline), at(minute), frozenset(sent))
        assert not sent & set(decision.due)
        sent |= set(decision.due)
        if decision.due:
            written[minute] = [label(key) for key in decision.due]
    return written


def every_minute(until: int) -> range:
    return range(until + 1)


# The schedule: each step at the sum of the delays so far.

THREE_STEPS = policy((0, "slack"), (5, "email"), (10, "pd"))
DELAYED = policy((2, "slack"), (3, "email"))


@pytest.mark.parametrize(
    ("snapshot", "now", "due", "next_at"),
    [
        pytest.param(THREE_STEPS, -1, [], 0, id="before-the-opening"),
        pytest.param(THREE_STEPS, 0, ["trigger 0/0 slack"], 5, id="first-step-at-the-opening"),
        pytest.param(THREE_STEPS, 4.99, ["trigger 0/0 slack"], 5, id="just-before-step-1"),
        pytest.param(
            THREE_STEPS,
            5,
            ["trigger 0/0 slack", "trigger 1/0 email"],
            15,
            id="at-step-1",
        ),
        pytest.param(
            THREE_STEPS,
            60,
            ["trigger 0/0 slack", "trigger 1/0 email", "trigger 2/0 pd"],
            None,
            id="long-after-the-last-step",
        ),
        pytest.param(DELAYED, 0, [], 2, id="first-delay-counts-from-the-opening"),
        pytest.param(DELAYED, 2, ["trigger 0/0 slack"], 5, id="first-step-after-its-delay"),
        pytest.param(
            DELAYED,
            5,
            ["trigger 0/0 slack", "trigger 1/0 email"],
            None,
            id="second-delay-counts-from-the-first-step",
        ),
    ],
)
def test_nothing_sent_yet_every_step_due_by_now_is_due(snapshot, now, due, next_at):
    decision = decide(snapshot, facts(now), at(now), frozenset())
    assert [label(key) for key in decision.due] == due
    assert decision.next_at == (None if next_at is None else at(next_at))


@pytest.mark.parametrize(
    ("ticks", "written"),
    [
        pytest.param(
            every_minute(20),
            {0: ["trigger 0/0 slack"], 5: ["trigger 1/0 email"], 15: ["trigger 2/0 pd"]},
            id="ticking-every-minute",
        ),
        pytest.param(
            [0, 4, 16, 17],
            {0: ["trigger 0/0 slack"], 16: ["trigger 1/0 email", "trigger 2/0 pd"]},
            id="a-late-tick-catches-up-once",
        ),
        pytest.param(
            [30, 31],
            {30: ["trigger 0/0 slack", "trigger 1/0 email", "trigger 2/0 pd"]},
            id="a-first-tick-long-after-the-opening",
        ),
        pytest.param(
            [0, 0, 5, 5],
            {0: ["trigger 0/0 slack"], 5: ["trigger 1/0 email"]},
            id="ticks-twice-at-once",
        ),
    ],
)
def test_each_step_is_written_once_at_or_after_its_time(ticks, written):
    assert run(THREE_STEPS, ticks) == written


def test_a_channel_gets_one_trigger_per_step_that_lists_it():
    snapshot = policy((0, "slack"), (0, "slack email"))
    assert run(snapshot, [0, 1]) == {
        0: ["trigger 0/0 slack", "trigger 1/0 slack", "trigger 1/0 email"]
    }


# Repeat: the steps again, loop after loop.

REPEATED = policy((0, "slack"), (5, "pd"), repeat=2)


@pytest.mark.parametrize(
    ("snapshot", "written"),
    [
        pytest.param(
            REPEATED,
            {
                0: ["trigger 0/0 slack"],
                # A first step without delay starts the next loop with the last step.
                5: ["trigger 1/0 pd", "trigger 0/1 slack"],
                10: ["trigger 1/1 pd", "trigger 0/2 slack"],
                15: ["trigger 1/2 pd"],
            },
            id="first-step-without-delay",
        ),
        pytest.param(
            policy((2, "slack"), (3, "pd"), repeat=1),
            {
                2: ["trigger 0/0 slack"],
                5: ["trigger 1/0 pd"],
                7: ["trigger 0/1 slack"],  # the first delay again, after the last step
                10: ["trigger 1/1 pd"],
            },
            id="first-step-with-a-delay",
        ),
    ],
)
def test_repeat_runs_the_steps_again_after_the_last(snapshot, written):
    assert run(snapshot, every_minute(40)) == written


def test_the_schedule_lists_every_trigger_in_time_order():
    assert [(when, label(key)) for when, key in schedule(REPEATED, T0)] == [
        (at(0), "trigger 0/0 slack"),
        (at(5), "trigger 1/0 pd"),
        (at(5), "trigger 0/1 slack"),
        (at(10), "trigger 1/1 pd"),
        (at(10), "trigger 0/2 slack"),
        (at(15), "trigger 1/2 pd"),
    ]


def test_after_the_last_loop_nothing_more_comes():
    decision = decide(REPEATED, facts(15), at(15), frozenset())
    assert len(decision.due) == 6
    assert decision.next_at is None


# Acknowledge: steps and reminders stop; PagerDuty hears of it.

PD_FIRST = policy((0, "slack pd"), (5, "email"), (10, "hook"))


@pytest.mark.parametrize(
    ("snapshot", "ticks", "acked", "written"),
    [
        pytest.param(
            PD_FIRST,
            every_minute(20),
            3,
            {0: ["trigger 0/0 slack", "trigger 0/0 pd"], 3: ["acknowledge pd"]},
            id="after-pagerduty-was-paged",
        ),
        pytest.param(
            policy((0, "slack"), (5, "pd")),
            every_minute(20),
            3,
            {0: ["trigger 0/0 slack"]},
            id="before-pagerduty-was-paged-says-nothing",
        ),
        pytest.param(
            PD_FIRST,
            every_minute(20),
            5,
            {0: ["trigger 0/0 slack", "trigger 0/0 pd"], 5: ["acknowledge pd"]},
            id="at-the-moment-a-step-is-due-wins",
        ),
        pytest.param(
            PD_FIRST,
            [0, 7],
            6,
            {0: ["trigger 0/0 slack", "trigger 0/0 pd"], 7: ["acknowledge pd"]},
            id="a-step-missed-by-a-late-tick-stays-unsent",
        ),
        pytest.param(
            policy((0, "slack"), (5, "pd"), (10, "email"), repeat=1),
            every_minute(40),
            22,
            {
                0: ["trigger 0/0 slack"],
                5: ["trigger 1/0 pd"],
                15: ["trigger 2/0 email", "trigger 0/1 slack"],
                20: ["trigger 1/1 pd"],
                22: ["acknowledge pd"],  # one per channel, however often it was paged
            },
            id="in-a-later-step",
        ),
    ],
)
def test_acknowledge_stops_the_escalation_and_tells_pagerduty(snapshot, ticks, acked, written):
    assert run(snapshot, ticks, acked=acked) == written


def test_after_an_acknowledge_there_is_no_next_time():
    sent = frozenset(decide(PD_FIRST, facts(0), at(0), frozenset()).due)
    decision = decide(PD_FIRST, facts(3, acked=3), at(3), sent)
    assert decision.next_at is None


# Resolve: everything stops; who was told it fired may be told it is over.


@pytest.mark.parametrize(
    ("notify_on_resolve", "ticks", "timeline", "written"),
    [
        pytest.param(
            False,
            every_minute(20),
            {"resolved": 7},
            {
                0: ["trigger 0/0 slack", "trigger 0/0 pd"],
                5: ["trigger 1/0 email"],
                7: ["resolve pd"],
            },
            id="pagerduty-always",
        ),
        pytest.param(
            True,
            every_minute(20),
            {"resolved": 7},
            {
                0: ["trigger 0/0 slack", "trigger 0/0 pd"],
                5: ["trigger 1/0 email"],
                7: ["resolve slack", "resolve email", "resolve pd"],  # not hook: never told
            },
            id="notify-on-resolve-tells-every-channel-notified",
        ),
        pytest.param(
            True,
            every_minute(20),
            {"acked": 3, "resolved": 7},
            {
                0: ["trigger 0/0 slack", "trigger 0/0 pd"],
                3: ["acknowledge pd"],
                7: ["resolve slack", "resolve pd"],
            },
            id="after-an-acknowledge",
        ),
        pytest.param(
            False,
            [0, 4, 10, 20],
            {"acked": 2, "resolved": 2},
            {0: ["trigger 0/0 slack", "trigger 0/0 pd"], 4: ["resolve pd"]},
            id="acknowledged-and-resolved-between-two-ticks-resolve-only",
        ),
    ],
)
def test_resolve_stops_everything(notify_on_resolve, ticks, timeline, written):
    snapshot = policy(
        (0, "slack pd"), (5, "email"), (10, "hook"), notify_on_resolve=notify_on_resolve
    )
    assert run(snapshot, ticks, **timeline) == written


def test_an_alert_resolved_before_anyone_was_told_writes_nothing():
    snapshot = policy((2, "slack pd"), notify_on_resolve=True)
    assert run(snapshot, every_minute(10), resolved=1) == {}
    assert decide(snapshot, facts(5, resolved=1), at(5), frozenset()).next_at is None


# Reminders: the latest one due, to every channel paged before it.

REMINDED = policy((0, "slack"), (10, "pd"), remind_every=5 * MINUTE)


@pytest.mark.parametrize(
    ("snapshot", "ticks", "timeline", "written"),
    [
        pytest.param(
            REMINDED,
            every_minute(21),
            {},
            {
                0: ["trigger 0/0 slack"],
                5: ["reminder 1 slack"],
                # pd's trigger is at reminder 2's moment, not before: no reminder for it.
                10: ["trigger 1/0 pd", "reminder 2 slack"],
                15: ["reminder 3 slack", "reminder 3 pd"],
                20: ["reminder 4 slack", "reminder 4 pd"],
            },
            id="every-five-minutes",
        ),
        pytest.param(
            REMINDED,
            [0, 17, 18],
            {},
            # Not caught up: reminder 3 only. The step caught up may meet it (module doc).
            {0: ["trigger 0/0 slack"], 17: ["trigger 1/0 pd", "reminder 3 slack", "reminder 3 pd"]},
            id="a-late-tick-sends-only-the-latest",
        ),
        pytest.param(
            REMINDED,
            every_minute(30),
            {"acked": 7},
            {0: ["trigger 0/0 slack"], 5: ["reminder 1 slack"]},
            id="stop-on-acknowledge",
        ),
        pytest.param(
            REMINDED,
            every_minute(30),
            {"resolved": 12},
            {
                0: ["trigger 0/0 slack"],
                5: ["reminder 1 slack"],
                10: ["trigger 1/0 pd", "reminder 2 slack"],
                12: ["resolve pd"],
            },
            id="stop-on-resolve",
        ),
        pytest.param(
            policy((7, "slack"), remind_every=5 * MINUTE),
            every_minute(12),
            {},
            {7: ["trigger 0/0 slack"], 10: ["reminder 2 slack"]},
            id="none-before-anyone-was-paged",
        ),
        pytest.param(
            REMINDED,
            every_minute(29),
            {"silenced": (3, 27)},
            {0: ["trigger 0/0 slack"], 27: ["trigger 1/0 pd", "reminder 5 slack", "reminder 5 pd"]},
            id="held-by-a-silence-then-only-the-latest",
        ),
    ],
)
def test_reminders(snapshot, ticks, timeline, written):
    assert run(snapshot, ticks, **timeline) == written


@pytest.mark.parametrize(
    ("now", "sent_until", "next_at"),
    [
        pytest.param(0, 0, 5, id="after-the-first-trigger"),
        pytest.param(5, 5, 10, id="after-reminder-1-comes-the-step"),
        pytest.param(12, 12, 15, id="after-the-last-step-reminders-go-on"),
        pytest.param(100, 100, 105, id="and-on"),
    ],
)
def test_next_at_includes_the_next_reminder(now, sent_until, next_at):
    sent = frozenset(decide(REMINDED, facts(sent_until), at(sent_until), frozenset()).due)
    assert decide(REMINDED, facts(now), at(now), sent).next_at == at(next_at)


def test_next_at_waits_for_the_first_reminder_with_someone_to_remind():
    snapshot = policy((7, "slack"), remind_every=5 * MINUTE)
    assert decide(snapshot, facts(0), at(0), frozenset()).next_at == at(7)
    sent = frozenset(decide(snapshot, facts(7), at(7), frozenset()).due)
    assert decide(snapshot, facts(7), at(7), sent).next_at == at(10)


# Silence holds triggers and reminders, not acknowledges nor resolves.

SILENCED = policy((0, "slack pd"), (5, "email"), (10, "hook"), notify_on_resolve=True)


@pytest.mark.parametrize(
    ("timeline", "written"),
    [
        pytest.param(
            {"silenced": (3, 12)},
            {
                0: ["trigger 0/0 slack", "trigger 0/0 pd"],
                12: ["trigger 1/0 email"],
                15: ["trigger 2/0 hook"],
            },
            id="steps-due-in-the-silence-go-when-it-ends",
        ),
        pytest.param(
            {"silenced": (0, 6)},
            {
                6: ["trigger 0/0 slack", "trigger 0/0 pd", "trigger 1/0 email"],
                15: ["trigger 2/0 hook"],
            },
            id="opened-silenced",
        ),
        pytest.param(
            {"silenced": (3, 99), "resolved": 8},
            {0: ["trigger 0/0 slack", "trigger 0/0 pd"], 8: ["resolve slack", "resolve pd"]},
            id="a-resolve-in-the-silence-is-told",
        ),
        pytest.param(
            {"silenced": (3, 99), "acked": 4},
            {0: ["trigger 0/0 slack", "trigger 0/0 pd"], 4: ["acknowledge pd"]},
            id="an-acknowledge-in-the-silence-is-told",
        ),
        pytest.param(
            {"silenced": (0, 99), "resolved": 8},
            {},
            id="silenced-throughout-nobody-to-tell",
        ),
    ],
)
def test_silence(timeline, written):
    assert run(SILENCED, every_minute(20), **timeline) == written


def test_while_silenced_there_is_no_next_time():
    decision = decide(REMINDED, facts(3, silenced=(0, 10)), at(3), frozenset())
    assert decision == escalation.Decision((), None)


# Never twice.


@pytest.mark.parametrize(
    ("snapshot", "minute", "timeline"),
    [
        pytest.param(THREE_STEPS, 30, {}, id="catching-up"),
        pytest.param(REMINDED, 17, {}, id="with-reminders"),
        pytest.param(REPEATED, 30, {}, id="loops"),
        pytest.param(SILENCED, 30, {"acked": 20}, id="acknowledged"),
        pytest.param(SILENCED, 30, {"resolved": 20}, id="resolved"),
    ],
)
def test_a_second_call_at_the_same_time_writes_nothing(snapshot, minute, timeline):
    sent: set[NotificationKey] = set()
    for now in (0, 10, minute):
        sent |= set(decide(snapshot, facts(now, **timeline), at(now), frozenset(sent)).due)
    again = decide(snapshot, facts(minute, **timeline), at(minute), frozenset(sent))
    assert again.due == ()


def test_reapplying_a_policy_catches_up_its_new_steps_and_keeps_what_was_sent():
    old = policy((0, "slack"))
    new = PolicySnapshot(
        version=2,
        steps=(StepSnapshot(timedelta(0), (SLACK,)), StepSnapshot(5 * MINUTE, (PD,))),
        pagerduty_channels=frozenset({PD}),
    )
    sent = frozenset(decide(old, facts(0), at(0), frozenset()).due)
    assert [label(key) for key in decide(new, facts(20), at(20), sent).due] == ["trigger 1/0 pd"]


@pytest.mark.parametrize("is_test", [False, True], ids=["real", "test"])
def test_a_test_alert_walks_the_policy_as_a_real_one(is_test):
    assert run(SILENCED, every_minute(20), resolved=16, is_test=is_test) == {
        0: ["trigger 0/0 slack", "trigger 0/0 pd"],
        5: ["trigger 1/0 email"],
        15: ["trigger 2/0 hook"],
        16: ["resolve slack", "resolve email", "resolve pd", "resolve hook"],
    }


@pytest.mark.parametrize(
    ("snapshot", "timeline", "expected"),
    [
        pytest.param(THREE_STEPS, {}, T0, id="first-step-without-delay"),
        pytest.param(DELAYED, {}, at(2), id="first-step-with-a-delay"),
        pytest.param(THREE_STEPS, {"silenced": (0, 5)}, None, id="opened-silenced"),
        pytest.param(THREE_STEPS, {"acked": 0}, None, id="acknowledged"),
        pytest.param(THREE_STEPS, {"resolved": 0}, None, id="resolved"),
    ],
)
def test_first_due(snapshot, timeline, expected):
    assert first_due(snapshot, facts(0, **timeline)) == expected


# Refusals.


def step(delay=MINUTE, channels=(SLACK,)) -> StepSnapshot:
    return StepSnapshot(delay, channels)


VALID = {
    "version": 1,
    "steps": (step(timedelta(0)), step(5 * MINUTE, (PD,))),
    "repeat": 1,
    "remind_every": 10 * MINUTE,
    "notify_on_resolve": True,
    "pagerduty_channels": frozenset({PD}),
}

# (changes, field, message): refused by the constructor, so never stored nor run.
UNSOUND = [
    ({"steps": ()}, "steps", "A policy needs at least one step."),
    ({"steps": "step"}, "steps", "Must be a list of steps."),
    (
        {"steps": (step(), step(MINUTE, ()))},
        "steps[1].channels",
        "A step needs at least one channel or schedule.",
    ),
    ({"steps": (step(), step(-MINUTE))}, "steps[1].delay", "Must not be negative."),
    ({"steps": (step(SECOND / 2),)}, "steps[0].delay", "Must be a whole number of seconds."),
    ({"steps": (step(300),)}, "steps[0].delay", "Must be a duration in whole seconds."),
    (
        {"steps": (step(channels=("slack",)),)},
        "steps[0].channels",
        "Must be a list of channel ids.",
    ),
    ({"steps": (step(channels=(0,)),)}, "steps[0].channels", "Must be a list of channel ids."),
    ({"steps": (step(channels=(True,)),)}, "steps[0].channels", "Must be a list of channel ids."),
    ({"version": -1}, "version", "Must be a whole number, 0 or more."),
    ({"version": "1"}, "version", "Must be a whole number, 0 or more."),
    ({"repeat": -1}, "repeat", "Must be a whole number, 0 or more."),
    ({"repeat": 1.5}, "repeat", "Must be a whole number, 0 or more."),
    ({"remind_every": timedelta(0)}, "remind_every", "Must be positive."),
    ({"remind_every": -MINUTE}, "remind_every", "Must be positive."),
    ({"remind_every": 600}, "remind_every", "Must be a duration in whole seconds."),
    ({"notify_on_resolve": "yes"}, "notify_on_resolve", "Must be true or false."),
    (
        {"pagerduty_channels": frozenset({"pd"})},
        "pagerduty_channels",
        "Must be a list of channel ids.",
    ),
]

# (changes, field, message): constructed (a stored snapshot keeps running), refused by
# validate() (an editor may not save it).
OVER_THE_LIMITS = [
    ({"steps": (step(),) * (MOST_STEPS + 1)}, "steps", f"A policy has at most {MOST_STEPS} steps."),
    (
        {"steps": (step(LONGEST_WAIT + SECOND),)},
        "steps[0].delay",
        "Must be at most 604800 seconds (7 days).",
    ),
    (
        {"steps": (step(channels=(1, 2, 1)),)},
        "steps[0].channels",
        "Channel 1 is listed more than once.",
    ),
    ({"repeat": MOST_REPEATS + 1}, "repeat", "Must be at most 10."),
    (
        {"steps": (step(timedelta(0)), step(timedelta(0))), "repeat": 1},
        "repeat",
        "Repeating needs at least one step with a delay: with none, every loop would fire "
        "at the same moment.",
    ),
    ({"remind_every": SHORTEST_REMINDER - SECOND}, "remind_every", "Must be at least 60 seconds."),
    (
        {"remind_every": LONGEST_WAIT + SECOND},
        "remind_every",
        "Must be at most 604800 seconds (7 days).",
    ),
]


def readable(case) -> str:
    _, field, message = case
    return f"{field}-{message[:30]}".replace(" ", "-")


@pytest.mark.parametrize(("changes", "field", "message"), UNSOUND, ids=map(readable, UNSOUND))
def test_the_constructor_refuses_what_cannot_run(changes, field, message):
    with pytest.raises(PolicyError) as caught:
        PolicySnapshot(**(VALID | changes))
    assert caught.value.errors == {field: [message]}
    assert f"{field}: {message}" in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "field", "message"), OVER_THE_LIMITS, ids=map(readable, OVER_THE_LIMITS)
)
def test_validate_refuses_what_an_editor_may_not_save(changes, field, message):
    snapshot = PolicySnapshot(**(VALID | changes))
    with pytest.raises(PolicyError) as caught:
        snapshot.validate()
    assert caught.value.errors == {field: [message]}


def test_the_valid_policy_is_valid():
    PolicySnapshot(**VALID).validate()


def test_every_problem_is_reported_at_once_limits_included():
    with pytest.raises(PolicyError) as caught:
        PolicySnapshot(
            **(VALID | {"steps": (step(-MINUTE), step(channels=())), "repeat": MOST_REPEATS + 1})
        )
    assert caught.value.errors == {
        "steps[0].delay": ["Must not be negative."],
        "steps[1].channels": ["A step needs at least one channel or schedule."],
        "repeat": ["Must be at most 10."],
    }
    assert caught.value.messages("policy") == [
        "policy.steps[0].delay: Must not be negative.",
        "policy.steps[1].channels: A step needs at least one channel or schedule.",
        "policy.repeat: Must be at most 10.",
    ]


def test_lists_become_tuples_so_a_snapshot_stays_hashable():
    snapshot = PolicySnapshot(
        version=1, steps=[StepSnapshot(timedelta(0), [SLACK])], pagerduty_channels=[PD]
    )
    assert snapshot.steps == (StepSnapshot(timedelta(0), (SLACK,)),)
    assert snapshot.pagerduty_channels == frozenset({PD})
    assert hash(snapshot)


def test_facts_keys_and_now_refuse_what_cannot_be_compared():
    with pytest.raises(ValueError, match="opened_at must be an aware datetime"):
        AlertFacts(opened_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="now must be an aware datetime"):
        decide(THREE_STEPS, facts(0), datetime(2026, 1, 1), frozenset())
    with pytest.raises(ValueError, match="event must be one of"):
        NotificationKey(0, 0, 0, SLACK, "page")


# Storage: a snapshot goes into a JSONField and comes back equal.


@pytest.mark.parametrize(
    "snapshot",
    [THREE_STEPS, REPEATED, REMINDED, SILENCED, PolicySnapshot(**VALID)],
    ids=["three-steps", "repeated", "reminded", "notify-on-resolve", "every-option"],
)
def test_a_snapshot_survives_a_json_round_trip(snapshot):
    stored = json.dumps(snapshot.to_json())
    assert PolicySnapshot.from_json(json.loads(stored)) == snapshot


def test_the_stored_form_counts_delays_in_seconds():
    assert PolicySnapshot(**VALID).to_json() == {
        "version": 1,
        "steps": [{"delay": 0, "channels": [SLACK]}, {"delay": 300, "channels": [PD]}],
        "repeat": 1,
        "remind_every": 600,
        "notify_on_resolve": True,
        "pagerduty_channels": [PD],
    }


STORED = PolicySnapshot(**VALID).to_json()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        pytest.param(
            [], NON_FIELD_ERRORS, "A policy snapshot must be an object.", id="not-an-object"
        ),
        pytest.param(STORED | {"steps": None}, "steps", "Must be a list of steps.", id="no-steps"),
        pytest.param(
            STORED | {"steps": [0]},
            "steps[0]",
            "Must be an object with a delay and channels.",
            id="a-step-not-an-object",
        ),
        pytest.param(
            STORED | {"steps": [{"delay": "5m", "channels": [1]}]},
            "steps[0].delay",
            "Must be a duration in whole seconds.",
            id="delay-as-text",
        ),
        pytest.param(
            STORED | {"steps": [{"delay": True, "channels": [1]}]},
            "steps[0].delay",
            "Must be a duration in whole seconds.",
            id="delay-as-a-boolean",
        ),
        pytest.param(
            STORED | {"steps": [{"delay": 60}]},
            "steps[0].channels",
            "Must be a list of channel ids.",
            id="channels-missing",
        ),
        pytest.param(
            STORED | {"remind_every": 0},
            "remind_every",
            "Must be positive.",
            id="remind-every-zero",
        ),
        pytest.param(
            STORED | {"pagerduty_channels": [{"id": 3}]},
            "pagerduty_channels",
            "Must be a list of channel ids.",
            id="pagerduty-channels-unhashable",
        ),
        pytest.param(
            {k: v for k, v in STORED.items() if k != "version"},
            "version",
            "Must be a whole number, 0 or more.",
            id="version-missing",
        ),
    ],
)
def test_from_json_refuses_what_is_not_a_snapshot(data, field, message):
    with pytest.raises(PolicyError) as caught:
        PolicySnapshot.from_json(data)
    assert caught.value.errors == {field: [message]}


def test_from_json_ignores_unknown_keys_and_defaults_the_options():
    data = {"version": 3, "steps": [{"delay": 60, "channels": [1]}], "written_by": "v2"}
    assert PolicySnapshot.from_json(data) == PolicySnapshot(3, (StepSnapshot(MINUTE, (1,)),))


def test_from_json_keeps_running_a_snapshot_a_tightened_limit_would_refuse():
    data = STORED | {"repeat": MOST_REPEATS + 5}
    assert PolicySnapshot.from_json(data).repeat == MOST_REPEATS + 5


# The module's own boundaries.


def test_events_agree_with_the_payloads():
    from controlplane.paging.payloads import EVENTS as PAYLOAD_EVENTS

    assert EVENTS == PAYLOAD_EVENTS


def test_the_module_needs_nothing_beyond_the_standard_library():
    tree = ast.parse(Path(escalation.__file__).read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"__future__", "collections", "dataclasses", "datetime", "typing"}


# Properties over any policy and any ticks.

channel_sets = st.lists(st.sampled_from([1, 2, 3, 4, 5]), min_size=1, max_size=3, unique=True)
delays = st.sampled_from([0, 30, 60, 90, 300]).map(lambda s: s * SECOND)
reminders = st.one_of(st.none(), st.sampled_from([60, 90, 120, 300]).map(lambda s: s * SECOND))


@st.composite
def policies(draw) -> PolicySnapshot:
    steps = draw(
        st.lists(st.builds(StepSnapshot, delays, channel_sets.map(tuple)), min_size=1, max_size=4)
    )
    cycle = sum((s.delay for s in steps), timedelta(0))
    snapshot = PolicySnapshot(
        version=draw(st.integers(0, 5)),
        steps=tuple(steps),
        repeat=draw(st.integers(0, 3)) if cycle else 0,
        remind_every=draw(reminders),
        notify_on_resolve=draw(st.booleans()),
        pagerduty_channels=frozenset(draw(st.lists(st.sampled_from([1, 2, 3, 4, 5])))),
    )
    snapshot.validate()
    return snapshot


# Tick times in seconds from the opening, a few of them before it.
tick_times = st.lists(st.integers(-60, 2400), min_size=1, max_size=25, unique=True).map(sorted)
moments = st.one_of(st.none(), st.integers(-30, 2400))


def seconds(n: int) -> datetime:
    return T0 + n * SECOND


def reminder_time(snapshot: PolicySnapshot, n: int) -> datetime:
    return T0 + n * snapshot.remind_every


def first_trigger(snapshot: PolicySnapshot) -> dict[int, datetime]:
    found: dict[int, datetime] = {}
    for when, key in schedule(snapshot, T0):
        found.setdefault(key.channel, when)
    return found


def by_event(keys, *events) -> set[NotificationKey]:
    return {key for key in keys if key.event in events}


@given(policies(), tick_times)
def test_any_ticks_write_what_one_call_at_the_last_would(snapshot, ticks):
    firing = AlertFacts(opened_at=T0)
    sent: set[NotificationKey] = set()
    for tick in ticks:
        due = decide(snapshot, firing, seconds(tick), frozenset(sent)).due
        assert len(set(due)) == len(due), "no key twice in one decision"
        assert not sent & set(due), "no key written twice"
        sent |= set(due)
    once = set(decide(snapshot, firing, seconds(ticks[-1]), frozenset()).due)
    # Triggers: no loss, nothing extra.
    assert by_event(sent, "trigger") == by_event(once, "trigger")
    # Reminders are not caught up: one call writes only the latest, which the ticks
    # wrote too (module doc, rule 3).
    assert by_event(once, "reminder") <= by_event(sent, "reminder")
    assert by_event(sent, "acknowledge", "resolve", "test") == set()


@given(
    policies(),
    tick_times,
    moments,
    moments,
    st.one_of(st.none(), st.tuples(st.integers(-30, 2400), st.integers(0, 2400))),
    st.booleans(),
)
def test_invariants_hold_over_any_history(snapshot, ticks, acked, resolved, silence, is_test):
    def facts_at(tick: int) -> AlertFacts:
        return AlertFacts(
            opened_at=T0,
            acknowledged_at=seconds(acked) if acked is not None and acked <= tick else None,
            resolved_at=seconds(resolved) if resolved is not None and resolved <= tick else None,
            silenced=silence is not None and silence[0] <= tick < silence[0] + silence[1],
            is_test=is_test,
        )

    planned = dict((key, when) for when, key in schedule(snapshot, T0))
    first = first_trigger(snapshot)
    sent: set[NotificationKey] = set()
    for tick in ticks:
        now, state = seconds(tick), facts_at(tick)
        decision = decide(snapshot, state, now, frozenset(sent))
        due = set(decision.due)
        assert len(due) == len(decision.due)
        assert not sent & due, "never twice"
        notified = {key.channel for key in sent if key.event in ("trigger", "reminder")}
        for key in decision.due:
            if key.event == "trigger":
                assert state.escalating
                assert planned[key] <= now, "nothing before its time"
            elif key.event == "reminder":
                assert state.escalating
                assert key.reminder >= 1
                when = reminder_time(snapshot, key.reminder)
                assert when <= now < when + snapshot.remind_every, "the latest one only"
                assert first[key.channel] < when
            elif key.event == "acknowledge":
                assert state.acknowledged_at is not None
                assert state.resolved_at is None
                assert key.channel in notified & snapshot.pagerduty_channels
            else:
                assert key.event == "resolve"
                assert state.resolved_at is not None
                assert key.channel in notified
                assert snapshot.notify_on_resolve or key.channel in snapshot.pagerduty_channels
        # The test flag changes nothing.
        as_other = AlertFacts(
            state.opened_at, state.acknowledged_at, state.resolved_at, state.silenced, not is_test
        )
        assert decide(snapshot, as_other, now, frozenset(sent)) == decision
        sent |= due

        # Idempotent, and quiet until next_at, when something is due.
        assert decide(snapshot, state, now, frozenset(sent)).due == ()
        if decision.next_at is None:
            assert not state.escalating or not any(when > now for when in planned.values())
            assert not state.escalating or snapshot.remind_every is None
        else:
            assert state.escalating
            assert decision.next_at > now
            just_before = decision.next_at - timedelta(microseconds=1)
            if just_before > now:
                assert decide(snapshot, state, just_before, frozenset(sent)).due == ()
            assert decide(snapshot, state, decision.next_at, frozenset(sent)).due != ()

    # In the end, whoever was told it fired hears of the acknowledge or the resolve.
    final = facts_at(ticks[-1])
    notified = {key.channel for key in by_event(sent, "trigger", "reminder")}
    told = {
        event: {k.channel for k in by_event(sent, event)} for event in ("acknowledge", "resolve")
    }
    if final.resolved_at is not None:
        expected = (
            notified if snapshot.notify_on_resolve else notified & snapshot.pagerduty_channels
        )
        assert told["resolve"] == expected
    elif final.acknowledged_at is not None:
        assert told["acknowledge"] == notified & snapshot.pagerduty_channels
    assert by_event(sent, "test") == set()


@given(policies())
def test_any_snapshot_survives_a_json_round_trip(snapshot):
    assert PolicySnapshot.from_json(json.loads(json.dumps(snapshot.to_json()))) == snapshot


@given(policies(), st.integers(-60, 2400))
def test_nothing_is_due_before_first_due(snapshot, tick):
    firing = AlertFacts(opened_at=T0)
    start = first_due(snapshot, firing)
    due = decide(snapshot, firing, seconds(tick), frozenset()).due
    assert (due != ()) == (start is not None and seconds(tick) >= start)
