"""Who is told what about an alert, and when: escalation as a pure function.

The delivery engine calls `decide` on every tick and on every change of an alert
(opened, acknowledged, resolved, silenced, un-silenced, policy re-applied), writes a
Notification row for each key in `Decision.due` in the same transaction, and calls
again at `Decision.next_at`. Nothing here reads the database, the settings or the
clock: everything comes in as arguments, so every rule below is a table in
tests/paging/test_escalation.py.

The policy an alert runs on
---------------------------
A `PolicySnapshot` is taken when the alert opens and stored with it (`to_json`, delays
as whole seconds): an edit of the policy mid-incident changes nothing in flight.
Re-applying the current policy is calling `decide` with the new snapshot and the same
`sent` set: steps of the new version already due are due at once, and a (step, loop,
channel) already written under the old version is not written again.

`pagerduty_channels` says which channel ids are PagerDuty's (the kind decides who
hears of an acknowledge). It may name channels no step lists: when re-applying a
policy keep those of the version replaced, so an incident opened there still gets its
acknowledge and resolve.

Rules
-----
Times are offsets from `opened_at`; `cycle` is the sum of every step's delay.

1. Schedule. Step i of loop l is due at
       opened_at + l * cycle + (delay_0 + ... + delay_i),   for l = 0 .. repeat,
   and writes one `trigger` to each of its channels: key (step=i, loop=l, reminder=0).
   A step's delay counts from the previous step, the first step's from the opening,
   and loop l+1's first step from loop l's last step (so a first step without delay
   starts the next loop at the moment the last step fires). A channel listed by
   several steps, or reached again by a later loop, gets one trigger per (step, loop):
   being told again is what a later step or loop is for.
2. Catch-up. While the alert fires, unacknowledged and unsilenced, every trigger due
   at or before `now` and not in `sent` is due now: a late tick, or the end of a
   silence, writes what the schedule missed, each key once.
3. Reminders (`remind_every`). Reminder n (n >= 1) is due at
   opened_at + n * remind_every, while the alert fires, unacknowledged and
   unsilenced, to every channel with a trigger scheduled strictly before that moment
   (PagerDuty included: a reminder re-opens an incident someone resolved by hand
   there while the alert still fires). Key (step=-1, loop=0, reminder=n). Reminders
   are not caught up: only the latest one due, n = floor((now - opened_at) /
   remind_every), is written, so a tick after an outage or a long silence says "still
   firing" once rather than once per missed interval. A trigger caught up after a
   silence may so reach a channel in the same tick as that reminder; the bundling
   transports send them as one message, and PagerDuty folds both into its incident.
4. Acknowledge (`acknowledged_at` set) stops triggers and reminders, including any
   scheduled before the acknowledgement but not yet written: the responder knows.
   It writes `acknowledge` to every PagerDuty channel notified so far; other kinds
   learn nothing of an acknowledge (a message for every acknowledge would be noise;
   the alert page shows it). Key (step=-1, loop=0, reminder=0): once per channel.
5. Resolve (`resolved_at` set) stops everything, acknowledge included (a resolve
   closes the PagerDuty incident whatever its state). It writes `resolve` to every
   channel notified so far when `notify_on_resolve`, else to the PagerDuty channels
   notified so far (an incident left open there would page on). Key (step=-1,
   loop=0, reminder=0). An alert resolved before anyone was notified writes nothing.
6. Silence holds triggers and reminders (next_at None: the silence's end is an outside
   change, after which rule 2 catches up). It does not hold an acknowledge or a
   resolve: those go only to channels already notified and close what was opened,
   where silence is for keeping new noise out. A silence begun mid-incident ("we are
   on it") must not leave the PagerDuty incident unacknowledged or open.
7. "Notified so far" is every channel with a `trigger` or `reminder` key in `sent`,
   whatever its delivery state (pending, failed and dead rows count: the ledger, not
   this module, owns delivery).
8. Never twice, nothing early. No key in `sent` is ever due; nothing is due before its
   time; calling again at the same `now` with the returned keys added to `sent`
   returns nothing. `sent` must hold every key written for the alert so far.
9. `next_at` is the earliest moment something new would be due if nothing outside
   changed: the next trigger or reminder while firing, unacknowledged and unsilenced;
   None otherwise (after an acknowledge, a resolve, during a silence, or once the last
   loop has fired and there are no reminders). Calling at next_at finds something due.
10. Tests. `is_test` changes no rule: a test-fired alert walks the policy exactly as a
    real one would, which is what the test is for. Its keys keep the events trigger,
    reminder, acknowledge and resolve; the engine marks every payload from the alert
    (`AlertNotice.is_test`). The event `test` belongs to a channel's "send test
    notification", which does not go through escalation: `decide` never returns it.

Due keys come in a stable order: triggers by time, loop, step and channel (a step's
channels before its schedules), then the reminder by channel, then acknowledges,
then resolves.

On-call schedules
-----------------
A step may also name on-call schedules (`StepSnapshot.schedules`). A schedule is a
target like a channel: every rule above applies to it, with its keys carrying
`schedule` (and `channel` 0). Who it reaches is no concern of this module: the engine
turns a schedule's trigger or reminder into one row per person on call at that moment,
and its acknowledge or resolve into one per person its triggers and reminders reached.
A schedule is never PagerDuty: it learns of an acknowledge never, of a resolve only
with `notify_on_resolve`, as an email channel.

Limits
------
The constructor refuses what `decide` cannot run on (wrong types, no step, a step with
no channel, a negative or fractional delay, a negative repeat, a remind_every that is
not positive). `validate()` adds the limits an editor must respect: at most MOST_STEPS
steps, each delay at most LONGEST_WAIT, no channel twice in one step, repeat at most
MOST_REPEATS, a repeat only when the cycle has some delay (else every loop fires at
once), remind_every between SHORTEST_REMINDER and LONGEST_WAIT. `from_json` applies the
constructor only, so a limit tightened later does not strand alerts already running on
an older snapshot. Errors are one `PolicyError` mapping fields (`steps[1].delay`) to
messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

# paging.payloads' Event (a test keeps the two equal); not imported, as that module
# needs Django's template engine and this one nothing beyond the standard library.
Event = Literal["trigger", "reminder", "acknowledge", "resolve", "test"]
EVENTS: tuple[Event, ...] = ("trigger", "reminder", "acknowledge", "resolve", "test")

# Editors' limits. They bound the keys one decision can return (steps x loops x
# channels), keep reminders from becoming a storm of their own, and keep every time
# computed far from datetime's range.
MOST_STEPS = 20
MOST_REPEATS = 10
SHORTEST_REMINDER = timedelta(seconds=60)
LONGEST_WAIT = timedelta(days=7)

# Where errors about the stored snapshot as a whole go (DRF's key, as in paging.channels).
NON_FIELD_ERRORS = "non_field_errors"

# Keys that belong to no step: reminders, acknowledges and resolves.
NO_STEP = -1

_ZERO = timedelta(0)
_SECOND = timedelta(seconds=1)


class PolicyError(ValueError):
    """The policy is refused; `errors` maps each field (`steps[1].delay`) to messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = {name: list(messages) for name, messages in errors.items()}
        super().__init__(" ".join(self.messages()))

    def messages(self, prefix: str = "") -> list[str]:
        """Every message as one sentence naming its field, e.g. "steps[1].delay: ..."."""
        found = []
        for name, messages in self.errors.items():
            where = prefix if name == NON_FIELD_ERRORS else _join(prefix, name)
            found += [f"{where}: {message}" if where else message for message in messages]
        return found


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


@dataclass(frozen=True)
class StepSnapshot:
    delay: timedelta
    channels: tuple[int, ...]
    schedules: tuple[int, ...] = ()  # on-call schedule ids (module doc)

    def __post_init__(self) -> None:
        # A list from a form or JSON becomes a tuple, so the snapshot stays hashable;
        # anything else is left for PolicySnapshot to refuse with the step's index.
        for name in ("channels", "schedules"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))


@dataclass(frozen=True)
class PolicySnapshot:
    version: int
    steps: tuple[StepSnapshot, ...]
    repeat: int = 0
    remind_every: timedelta | None = None
    notify_on_resolve: bool = False
    pagerduty_channels: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if isinstance(self.steps, list):
            object.__setattr__(self, "steps", tuple(self.steps))
        if isinstance(self.pagerduty_channels, list | tuple | set):
            try:
                object.__setattr__(self, "pagerduty_channels", frozenset(self.pagerduty_channels))
            except TypeError:
                pass  # something unhashable in it: refused below, with the field's name
        if _errors(self, limits=False):
            # Report the limits too, so an editor hears of everything at once.
            raise PolicyError(_errors(self, limits=True))

    def validate(self) -> None:
        """Refuse what an editor may not save (module doc, Limits)."""
        errors = _errors(self, limits=True)
        if errors:
            raise PolicyError(errors)

    @property
    def cycle(self) -> timedelta:
        """One loop's length: the sum of the step delays."""
        return sum((step.delay for step in self.steps), _ZERO)

    def offsets(self) -> tuple[timedelta, ...]:
        """When each step of loop 0 is due, counted from the opening."""
        found, total = [], _ZERO
        for step in self.steps:
            total += step.delay
            found.append(total)
        return tuple(found)

    def to_json(self) -> dict[str, Any]:
        """The snapshot for a JSONField: delays as whole seconds."""
        return {
            "version": self.version,
            "steps": [_step_json(step) for step in self.steps],
            "repeat": self.repeat,
            "remind_every": None if self.remind_every is None else _seconds(self.remind_every),
            "notify_on_resolve": self.notify_on_resolve,
            "pagerduty_channels": sorted(self.pagerduty_channels),
        }

    @classmethod
    def from_json(cls, data: object) -> PolicySnapshot:
        """The inverse of `to_json`. Unknown keys are ignored (a newer release may have
        written them); only the constructor's checks apply (module doc, Limits)."""
        if not isinstance(data, Mapping):
            raise PolicyError({NON_FIELD_ERRORS: ["A policy snapshot must be an object."]})
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list):
            raise PolicyError({"steps": ["Must be a list of steps."]})
        steps = []
        for index, raw in enumerate(raw_steps):
            if not isinstance(raw, Mapping):
                raise PolicyError(
                    {f"steps[{index}]": ["Must be an object with a delay and channels."]}
                )
            steps.append(
                StepSnapshot(
                    delay=_duration(raw.get("delay")),
                    channels=raw.get("channels"),
                    schedules=raw.get("schedules", []),
                )
            )
        remind_every = data.get("remind_every")
        pagerduty = data.get("pagerduty_channels", [])
        return cls(
            version=data.get("version"),
            steps=tuple(steps),
            repeat=data.get("repeat", 0),
            remind_every=None if remind_every is None else _duration(remind_every),
            notify_on_resolve=data.get("notify_on_resolve", False),
            pagerduty_channels=pagerduty,
        )


def _step_json(step: StepSnapshot) -> dict[str, Any]:
    found: dict[str, Any] = {"delay": _seconds(step.delay), "channels": list(step.channels)}
    if step.schedules:  # left out when none: snapshots without schedules stay as they were
        found["schedules"] = list(step.schedules)
    return found


def _seconds(delta: timedelta) -> int:
    return delta // _SECOND


def _duration(value: object) -> Any:
    # An integer becomes a duration; anything else goes through unchanged for the
    # constructor to refuse with its field's name.
    return timedelta(seconds=value) if _is_int(value) else value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _errors(policy: PolicySnapshot, *, limits: bool) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}

    def refuse(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    if not _is_int(policy.version) or policy.version < 0:
        refuse("version", "Must be a whole number, 0 or more.")

    steps = policy.steps
    delays_known = True
    if not isinstance(steps, tuple) or not all(isinstance(s, StepSnapshot) for s in steps):
        refuse("steps", "Must be a list of steps.")
        steps, delays_known = (), False
    elif not steps:
        refuse("steps", "A policy needs at least one step.")
    elif limits and len(steps) > MOST_STEPS:
        refuse("steps", f"A policy has at most {MOST_STEPS} steps.")

    for index, step in enumerate(steps):
        where = f"steps[{index}]"
        problem = _wait_problem(step.delay, zero_ok=True, limits=limits)
        if problem:
            refuse(f"{where}.delay", problem)
            delays_known = False
        channels, schedules = step.channels, step.schedules
        if not isinstance(schedules, tuple) or not all(_is_channel(s) for s in schedules):
            refuse(f"{where}.schedules", "Must be a list of schedule ids.")
            schedules = ()
        elif limits:
            for twice in sorted({s for s in schedules if schedules.count(s) > 1}):
                refuse(f"{where}.schedules", f"Schedule {twice} is listed more than once.")
        if not isinstance(channels, tuple) or not all(_is_channel(c) for c in channels):
            refuse(f"{where}.channels", "Must be a list of channel ids.")
        elif not channels and not schedules:
            refuse(f"{where}.channels", "A step needs at least one channel or schedule.")
        elif limits:
            for twice in sorted({c for c in channels if channels.count(c) > 1}):
                refuse(f"{where}.channels", f"Channel {twice} is listed more than once.")

    if not _is_int(policy.repeat) or policy.repeat < 0:
        refuse("repeat", "Must be a whole number, 0 or more.")
    elif limits and policy.repeat > MOST_REPEATS:
        refuse("repeat", f"Must be at most {MOST_REPEATS}.")
    elif limits and policy.repeat and steps and delays_known and policy.cycle == _ZERO:
        refuse(
            "repeat",
            "Repeating needs at least one step with a delay: with none, every loop "
            "would fire at the same moment.",
        )

    if policy.remind_every is not None:
        problem = _wait_problem(policy.remind_every, zero_ok=False, limits=limits)
        if problem:
            refuse("remind_every", problem)

    if not isinstance(policy.notify_on_resolve, bool):
        refuse("notify_on_resolve", "Must be true or false.")

    pagerduty = policy.pagerduty_channels
    if not isinstance(pagerduty, frozenset) or not all(_is_channel(c) for c in pagerduty):
        refuse("pagerduty_channels", "Must be a list of channel ids.")
    return errors


def _wait_problem(value: object, *, zero_ok: bool, limits: bool) -> str | None:
    if not isinstance(value, timedelta):
        return "Must be a duration in whole seconds."
    if value < _ZERO or (value == _ZERO and not zero_ok):
        return "Must not be negative." if zero_ok else "Must be positive."
    if value % _SECOND:
        return "Must be a whole number of seconds."
    if limits and not zero_ok and value < SHORTEST_REMINDER:
        return f"Must be at least {_seconds(SHORTEST_REMINDER)} seconds."
    if limits and value > LONGEST_WAIT:
        return f"Must be at most {_seconds(LONGEST_WAIT)} seconds ({LONGEST_WAIT.days} days)."
    return None


def _is_channel(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class AlertFacts:
    """What `decide` needs to know of the alert, as of the call.

    Acknowledged and resolved are read from the presence of their times, not from
    comparing them with `now`: the process that stamped them may run a clock ahead of
    the one deciding, and an acknowledge must stop the escalation at once.
    """

    opened_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    silenced: bool = False
    is_test: bool = False

    def __post_init__(self) -> None:
        for name in ("opened_at", "acknowledged_at", "resolved_at"):
            at = getattr(self, name)
            if at is not None:
                _require_aware(name, at)

    @property
    def escalating(self) -> bool:
        return self.acknowledged_at is None and self.resolved_at is None and not self.silenced


def _require_aware(name: str, at: datetime) -> None:
    if not isinstance(at, datetime) or at.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")


@dataclass(frozen=True, order=True)
class NotificationKey:
    """A Notification row's identity within its alert: the ledger's unique key."""

    step: int
    loop: int
    reminder: int
    channel: int  # 0 for an on-call schedule's key
    event: Event
    schedule: int = 0  # the on-call schedule's id, for its keys (module doc)

    @property
    def target(self) -> tuple[int, int]:
        return (self.channel, self.schedule)

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"event must be one of {', '.join(EVENTS)}")


# A trigger and the moment it is due.
Planned = tuple[datetime, NotificationKey]


@dataclass(frozen=True)
class Decision:
    due: tuple[NotificationKey, ...]
    next_at: datetime | None


def schedule(policy: PolicySnapshot, opened_at: datetime) -> tuple[Planned, ...]:
    """Every trigger the policy can write for an alert opened at `opened_at`, with the
    time it is due (rule 1), in the order `decide` returns them."""
    offsets = policy.offsets()
    cycle = policy.cycle
    planned = [
        (
            opened_at + loop * cycle + offsets[index],
            NotificationKey(index, loop, 0, channel, "trigger", schedule),
        )
        for loop in range(policy.repeat + 1)
        for index, step in enumerate(policy.steps)
        for channel, schedule in _targets(step)
    ]
    planned.sort(
        key=lambda item: (item[0], item[1].loop, item[1].step, item[1].schedule, item[1].channel)
    )
    return tuple(planned)


def _targets(step: StepSnapshot) -> list[tuple[int, int]]:
    """(channel, schedule) of each target: channels first, then schedules."""
    return [(c, 0) for c in step.channels] + [(0, s) for s in step.schedules]


def decide(
    policy: PolicySnapshot,
    facts: AlertFacts,
    now: datetime,
    sent: AbstractSet[NotificationKey],
) -> Decision:
    """The notifications to write now and when to call again (module doc, rules 1-10)."""
    _require_aware("now", now)
    notified = {key.target for key in sent if key.event in ("trigger", "reminder")}
    paged = {(c, s) for c, s in notified if not s and c in policy.pagerduty_channels}

    if facts.resolved_at is not None:
        told = notified if policy.notify_on_resolve else paged
        return Decision(_follow_ups(told, "resolve", sent), None)
    if facts.acknowledged_at is not None:
        return Decision(_follow_ups(paged, "acknowledge", sent), None)
    if facts.silenced:
        return Decision((), None)

    planned = schedule(policy, facts.opened_at)
    due = [key for at, key in planned if at <= now and key not in sent]
    upcoming = [at for at, key in planned if at > now and key not in sent]
    next_at = upcoming[0] if upcoming else None

    if policy.remind_every is not None:
        every = policy.remind_every
        first_trigger = planned[0][0]
        latest = (now - facts.opened_at) // every
        if latest >= 1:
            due += _reminders(planned, facts.opened_at + latest * every, latest, sent)
        # The next reminder with someone to remind: after now, and after the first
        # trigger (rule 3's "strictly before").
        n = max(1, latest + 1, (first_trigger - facts.opened_at) // every + 1)
        while not _reminders(planned, facts.opened_at + n * every, n, sent):
            n += 1  # only when `sent` already holds that reminder: finite
        at = facts.opened_at + n * every
        next_at = at if next_at is None else min(next_at, at)

    return Decision(tuple(due), next_at)


def _reminders(
    planned: tuple[Planned, ...],
    at: datetime,
    n: int,
    sent: AbstractSet[NotificationKey],
) -> list[NotificationKey]:
    targets = sorted({key.target for when, key in planned if when < at}, key=_channels_first)
    keys = (NotificationKey(NO_STEP, 0, n, c, "reminder", s) for c, s in targets)
    return [key for key in keys if key not in sent]


def _channels_first(target: tuple[int, int]) -> tuple[int, int]:
    channel, schedule = target
    return (schedule, channel)


def _follow_ups(
    targets: Iterable[tuple[int, int]], event: Event, sent: AbstractSet[NotificationKey]
) -> tuple[NotificationKey, ...]:
    keys = (
        NotificationKey(NO_STEP, 0, 0, c, event, s) for c, s in sorted(targets, key=_channels_first)
    )
    return tuple(key for key in keys if key not in sent)


def first_due(policy: PolicySnapshot, facts: AlertFacts) -> datetime | None:
    """When an alert that has written nothing yet first needs `decide`: its opening when
    something is due at once, else the first trigger's time; None when nothing would
    ever be due without an outside change (acknowledged, resolved or silenced)."""
    decision = decide(policy, facts, facts.opened_at, frozenset())
    return facts.opened_at if decision.due else decision.next_at
