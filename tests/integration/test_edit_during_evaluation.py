"""A rule or a source edited while it is being evaluated loses nothing.

The edits come through the API, in a thread of their own, with the source's PromQL
check held open until an evaluation has committed in between: the window in which
a save that wrote the whole row used to put back the instances it had read, and
leave their alerts open for ever.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from controlplane.alerting import evaluation
from controlplane.alerting.models import Alert, RuleEvaluation
from controlplane.catalog import sources
from controlplane.catalog.models import SourceHealth
from tests.factories import make_rule, make_source
from tests.promql.fake import FakePrometheus, vector
from tests.services import require_postgresql

pytestmark = pytest.mark.integration

WAIT = 60  # seconds a step may take on a loaded machine before the test gives up


def series(value, **labels):
    return {"metric": labels, "value": [1767225600, str(value)]}


class HeldCheck:
    """Makes the source's PromQL check (/api/v1/format_query) wait until released."""

    def __init__(self, fake: FakePrometheus) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        answer = fake.json(200, {"status": "success", "data": "queue_depth"})

        def reply(handler):
            self.entered.set()
            self.release.wait(WAIT)
            answer(handler)

        fake.routes["/api/v1/format_query"] = reply


def in_thread(work):
    """Run `work` in a thread with its own database connection; returns a joiner."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = work()
        except BaseException as error:  # reported by the joiner
            outcome["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join():
        thread.join(WAIT)
        assert not thread.is_alive(), "the edit did not finish"
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return join


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "change",
    [{"name": "Queue depth (renamed)"}, {"key": "queue.depth.renamed"}, {"threshold": 4}],
    ids=["rename", "new-key", "new-threshold"],
)
def test_an_edit_overlapping_an_evaluation_leaves_every_alert_resolvable(
    org, fake, api, write_token, change
):
    require_postgresql()
    rule = make_rule(org, source=make_source(org, fake.url), for_duration=timedelta(0))
    held = HeldCheck(fake)
    fake.answer(200, vector(series(9, queue="mail"), series(7, queue="sms")))

    edit = in_thread(
        lambda: api(write_token).patch(f"/api/v1/rules/{rule.key}/", change, format="json")
    )
    assert held.entered.wait(WAIT), "the edit never reached the PromQL check"
    # The edit has read the rule and waits on its source; an evaluation commits meanwhile.
    evaluation.evaluate_claimed([rule.pk])
    assert Alert.objects.filter(rule=rule, state="firing").count() == 2
    held.release.set()
    response = edit()
    assert response.status_code == 200, response.content

    row = RuleEvaluation.objects.get(rule=rule)
    assert len(row.instances) == 2, "the edit wrote back the instances it had read"
    fake.answer(200, vector())  # the condition clears
    evaluation.evaluate_claimed([rule.pk])

    assert not Alert.objects.filter(rule=rule).exclude(state="resolved").exists()
    assert Alert.objects.filter(rule=rule, state="resolved").count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_rule_disabled_while_its_query_is_in_flight_opens_nothing(org, fake, api, write_token):
    require_postgresql()
    rule = make_rule(org, source=make_source(org, fake.url), for_duration=timedelta(0))
    in_query, release = threading.Event(), threading.Event()
    breaching = fake.json(200, vector(series(9, queue="mail")))

    def slow_query(handler):
        in_query.set()
        release.wait(WAIT)
        breaching(handler)

    fake.routes["/api/v1/query"] = slow_query
    evaluating = in_thread(lambda: evaluation.evaluate_claimed([rule.pk]))
    assert in_query.wait(WAIT), "the evaluation never queried its source"

    response = api(write_token).patch(
        f"/api/v1/rules/{rule.key}/", {"enabled": False}, format="json"
    )
    assert response.status_code == 200, response.content
    release.set()
    [outcome] = evaluating()

    assert outcome.result == "retired"
    assert not Alert.objects.filter(rule=rule).exclude(state="resolved").exists()
    assert RuleEvaluation.objects.get(rule=rule).instances == []


@pytest.mark.django_db(transaction=True)
def test_a_source_edited_while_failing_keeps_its_failing_clock(org, fake, api, write_token):
    require_postgresql()
    source = make_source(org, fake.url, name="main")
    since = timezone.now() - timedelta(minutes=4)
    sources.record_health({source.pk: "unreachable"}, since)

    response = api(write_token).patch(
        "/api/v1/sources/main/", {"timeout": 3, "url": fake.url}, format="json"
    )

    assert response.status_code == 200, response.content
    # The edit wrote the source's row; the clock of source.down lives in another.
    assert SourceHealth.objects.get(source=source).failing_since == since
