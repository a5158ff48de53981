"""Opening, acknowledging and resolving alerts; silences; what the outbox hands on."""

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.alerting import lifecycle, outbox
from controlplane.alerting.models import Alert, AlertEvent, Silence
from controlplane.catalog.actors import BEAT, Actor
from tests.factories import RecordingConsumer, make_rule

pytestmark = pytest.mark.django_db


@pytest.fixture
def rule(org, service):
    return make_rule(org, service=service, name="Queue depth", severity="critical")


@pytest.fixture
def heard():
    listener = RecordingConsumer()
    outbox.register("test", listener.handle)
    yield listener
    outbox.unregister("test")


def open_one(rule, labels=None, **kw):
    kw.setdefault("actor", BEAT)
    return lifecycle.open_alert(
        rule, "fp-1", labels or {"queue": "mail"}, 5.0, {"summary": "s"}, **kw
    )


def test_open_is_idempotent_per_fingerprint(rule, heard, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first, created = open_one(rule)
        again, created_again = open_one(rule)

    assert (created, created_again) == (True, False)
    assert first.pk == again.pk
    assert Alert.objects.count() == 1
    assert heard() == [("opened", first.pk, "system:beat")]
    assert first.audit["service"] == "checkout"
    assert list(first.events.values_list("kind", flat=True)) == ["opened"]


def test_an_event_rolled_back_with_its_change_is_never_handed_on(rule, heard):
    from django.db import transaction

    def change_that_fails():
        with transaction.atomic():
            open_one(rule)
            raise RuntimeError("the change fails after the event was written")

    with pytest.raises(RuntimeError):
        change_that_fails()

    assert heard() == []
    assert not AlertEvent.objects.exists()


def test_database_refuses_a_second_open_alert_for_a_fingerprint(rule):
    from django.db import IntegrityError, transaction

    alert, _ = open_one(rule)
    duplicate = Alert(
        organization=rule.organization,
        rule=rule,
        rule_key=rule.key,
        fingerprint="fp-1",
        severity="critical",
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()

    lifecycle.resolve(alert, actor=BEAT)
    duplicate.save()  # once resolved, the fingerprint may open again
    assert Alert.objects.filter(fingerprint="fp-1").count() == 2


def test_acknowledge_then_resolve_writes_the_timeline(
    rule, member, org, heard, django_capture_on_commit_callbacks
):
    user = member(org, "responder")
    alert, _ = open_one(rule)

    with django_capture_on_commit_callbacks(execute=True):
        assert lifecycle.acknowledge(alert, Actor.user(user), note="looking")
        assert not lifecycle.acknowledge(alert, Actor.user(user))  # not firing any more
        assert lifecycle.resolve(alert, actor=Actor.user(user))
        assert not lifecycle.resolve(alert, actor=BEAT)

    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert alert.acknowledged_by == user
    events = list(alert.events.values_list("kind", "actor", "note"))
    assert events == [
        ("opened", "system:beat", ""),
        ("acknowledged", f"user:{user.pk}", "looking"),
        ("resolved", f"user:{user.pk}", ""),
    ]
    assert [name for name, *_ in heard()] == ["opened", "acknowledged", "resolved"]


def test_token_acknowledges_under_its_own_name(rule):
    alert, _ = open_one(rule)

    assert lifecycle.acknowledge(alert, Actor.parse("token:7"))

    alert.refresh_from_db()
    assert alert.acknowledged_by is None
    assert alert.events.get(kind="acknowledged").actor == "token:7"


def test_silenced_alert_is_recorded_and_released_when_the_silence_ends(
    rule, org, heard, django_capture_on_commit_callbacks
):
    now = timezone.now()
    silence = Silence.objects.create(
        organization=org,
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        matchers=[
            {"name": "rule", "op": "=", "value": "queue.depth"},
            {"name": "queue", "op": "=~", "value": "ma.*"},
        ],
        comment="database upgrade",
    )
    with django_capture_on_commit_callbacks(execute=True):
        alert, _ = open_one(rule)
    assert alert.silenced_by == silence
    assert list(alert.events.values_list("kind", flat=True)) == ["opened", "silenced"]

    assert lifecycle.release_ended_silences(now=now) == 0  # still in the window
    Silence.objects.filter(pk=silence.pk).update(ends_at=now - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert lifecycle.release_ended_silences() == 1
        assert lifecycle.release_ended_silences() == 0

    alert.refresh_from_db()
    assert alert.silenced_by is None
    assert alert.events.last().kind == AlertEvent.Kind.UNSILENCED
    assert ("unsilenced", alert.pk, "system:beat") in heard()


def test_silence_of_another_organisation_does_not_apply(rule, other_org):
    now = timezone.now()
    Silence.objects.create(
        organization=other_org,
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        matchers=[{"name": "rule", "op": "=", "value": "queue.depth"}],
        comment="theirs",
    )

    alert, _ = open_one(rule)

    assert alert.silenced_by is None


def test_resolved_alert_after_silence_ends_is_not_released(rule, org):
    now = timezone.now()
    silence = Silence.objects.create(
        organization=org,
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        matchers=[{"name": "service", "op": "=", "value": "checkout"}],
        comment="deploy",
    )
    alert, _ = open_one(rule)
    assert alert.silenced_by == silence
    lifecycle.resolve(alert, actor=BEAT)
    Silence.objects.filter(pk=silence.pk).update(ends_at=now - timedelta(seconds=1))

    assert lifecycle.release_ended_silences() == 0


def test_a_silence_created_while_an_alert_fires_silences_it(rule, org):
    alert, _ = open_one(rule)
    now = timezone.now()

    silence = Silence.objects.create(
        organization=org,
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        matchers=[{"name": "queue", "op": "=", "value": "mail"}],
        comment="mail relay work",
    )

    alert.refresh_from_db()
    assert alert.silenced_by == silence
    assert alert.events.last().kind == AlertEvent.Kind.SILENCED


def test_deleting_a_silence_makes_its_alerts_notifiable(
    rule, org, heard, django_capture_on_commit_callbacks
):
    now = timezone.now()
    silence = Silence.objects.create(
        organization=org,
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        matchers=[{"name": "rule", "op": "=", "value": "queue.depth"}],
        comment="maintenance",
    )
    alert, _ = open_one(rule)
    assert alert.silenced_by == silence

    with django_capture_on_commit_callbacks(execute=True):
        silence.delete()

    alert.refresh_from_db()
    assert alert.silenced_by is None
    assert alert.events.last().kind == AlertEvent.Kind.UNSILENCED
    # Deleted outside any request (a shell): the console's doing, not beat's.
    assert ("unsilenced", alert.pk, "system:console") in heard()


@pytest.mark.parametrize("how", ["disable", "delete"])
def test_a_disabled_or_deleted_rule_resolves_its_alerts(rule, how):
    alert, _ = open_one(rule)

    if how == "disable":
        rule.enabled = False
        rule.save()
    else:
        rule.delete()

    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert alert.events.last().note == f"rule {how}d"


@pytest.mark.parametrize("change", ["narrow the matchers", "move the start later"])
def test_editing_a_silence_releases_alerts_it_no_longer_covers(rule, org, heard, change):
    now = timezone.now()
    silence = Silence.objects.create(
        organization=org,
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        matchers=[{"name": "rule", "op": "=", "value": "queue.depth"}],
        comment="maintenance",
    )
    alert, _ = open_one(rule)
    assert alert.silenced_by == silence

    if change == "narrow the matchers":
        silence.matchers = [{"name": "rule", "op": "=", "value": "nothing.matches"}]
    else:
        silence.starts_at = now + timedelta(minutes=30)
    silence.save()

    alert.refresh_from_db()
    assert alert.silenced_by is None
    assert alert.events.last().note == "silence changed"
