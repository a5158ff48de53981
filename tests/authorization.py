"""The machinery of the authorization matrix (tests/test_authorization_matrix.py).

The matrix module holds the tables: who gets what answer where. This module builds
the world they are checked against (three organisations, each with one object of
every kind, every object carrying a marker string), lists what there is to check
(the API from its OpenAPI schema, the pages and the admin from the URL resolver),
and runs each cell in a savepoint that is rolled back, so a write leaves the world
as it found it for the next cell.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group
from django.db import models, transaction
from django.http import HttpResponse
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from rest_framework.test import APIClient

from controlplane.alerting.models import AlertEvent
from controlplane.audit.models import AuditEvent
from controlplane.catalog.models import ApiToken, Membership, Organization, Role, Service
from controlplane.jobs.models import JobRun, PingKey
from controlplane.oncall.models import Responder
from controlplane.paging import links
from controlplane.paging.models import Notification
from runbooks.models import RunbookRevision
from tests.factories import (
    make_alert,
    make_channel,
    make_integration,
    make_job,
    make_policy,
    make_rule,
    make_runbook,
    make_schedule,
    make_silence,
    make_slo,
    make_source,
    make_user,
)

# The columns of every table, in this order.
IDENTITIES = (
    "manager",
    "responder",
    "viewer",
    "read-token",
    "write-token",
    "two-orgs",
    "staff-of-none",
    "anonymous",
)

# What a cell is about: the collection (or no object at all), an object of the
# caller's organisation, one of an organisation the caller is no member of, or one
# shared by every organisation (a built-in runbook).
NONE, OWN, FOREIGN, SHARED = "-", "own", "foreign", "shared"


@dataclass(frozen=True)
class Redirect:
    """A 302 to `to`, or to anything that starts with it when `prefix`."""

    to: str
    prefix: bool = False

    def __str__(self) -> str:
        return f"302 to {self.to}{'…' if self.prefix else ''}"


Answer = int | Redirect

# In a table, the answer the operation gives when it is allowed (200, 201, 204, a
# redirect back to the page...): each row says which.
OK = "OK"

LOGIN = Redirect("/accounts/login/?next=", prefix=True)
ADMIN_LOGIN = Redirect("/admin/login/?next=", prefix=True)
ADMIN_INDEX = Redirect("/admin/")
# The admin's answer for an object it cannot find: back to its index, with a message.
MISSING = ADMIN_INDEX


def row(*answers: Answer | str) -> dict[str, Answer | str]:
    """One table row: an answer per identity, in the order of IDENTITIES."""
    if len(answers) != len(IDENTITIES):
        raise ValueError(f"a row needs {len(IDENTITIES)} answers, got {len(answers)}")
    return dict(zip(IDENTITIES, answers, strict=True))


# --- the world ------------------------------------------------------------------------


# Kinds with no text of their own show another kind's marker: a revision its
# runbook's title, a membership its user's name, an audit event (the rule's creation)
# the rule's name in its diff.
SHOWN_AS = {"revision": "runbook", "membership": "user", "responder": "user", "audit": "rule"}


@dataclass
class Holdings:
    """One organisation and one object of every kind, each with its own marker."""

    organization: Organization | None  # None: rows shared by every organisation
    letter: str
    objects: dict[str, models.Model] = field(default_factory=dict)

    def marker(self, kind: str) -> str:
        return f"mark-{self.letter}-{SHOWN_AS.get(kind, kind)}"

    @property
    def markers(self) -> dict[str, str]:
        """What must never be seen by those who may not see this organisation."""
        found = {kind: self.marker(kind) for kind in self.objects if kind not in SHOWN_AS}
        if self.organization is not None:
            found["organization slug"] = self.organization.slug
        return found

    def of(self, model: type[models.Model]) -> models.Model | None:
        for obj in self.objects.values():
            if type(obj) is model:
                return obj
        return None

    def marker_of(self, obj: models.Model) -> str:
        for kind, candidate in self.objects.items():
            if type(candidate) is type(obj) and candidate.pk == obj.pk:
                return self.marker(kind)
        return ""


# A channel of this name is in every organisation (see furnish).
SHARED_CHANNEL_NAME = "on-call-mail"

# The kinds of object with rows shared by every organisation.
SHARED_KINDS = ("runbook", "revision")


def furnish_shared() -> Holdings:
    """What every organisation's members read: a shared runbook, with its revision."""
    held = Holdings(None, "s")
    runbook = make_runbook(None, "shared-runbook", title=f"Runbook {held.marker('runbook')}")
    held.objects = dict(zip(SHARED_KINDS, [runbook, runbook.revisions.get()], strict=True))
    return held


def furnish(organization: Organization, letter: str, shared: Holdings) -> Holdings:
    """Give the organisation one object of every kind. Lookups (slugs, keys, names in
    URLs) stay plain; each object's marker is in a field it shows: a name, a title.

    The rule cites the shared runbook, whose page lists the rules citing it: those of
    the reader's organisations only.
    """
    held = Holdings(organization, letter)
    mark = held.marker
    Organization.objects.filter(pk=organization.pk).update(
        name=f"{organization.name} {mark('organization')}"
    )
    organization.refresh_from_db()
    service = Service.objects.create(
        organization=organization, slug=f"svc-{letter}", name=f"Service {mark('service')}"
    )
    # Built-in rules take the first source: the marked one is left free to delete.
    make_source(organization, "http://prometheus.example:9090", "prom")
    source = make_source(organization, f"http://{mark('source')}.example:9090", f"src-{letter}")
    runbook = make_runbook(organization, f"runbook-{letter}", title=f"Runbook {mark('runbook')}")
    rule = make_rule(
        organization,
        f"rule-{letter}",
        name=f"Rule {mark('rule')}",
        service=service,
        runbook=shared.objects["runbook"],
    )
    alert = make_alert(rule, f"fp-{letter}", annotations={"summary": mark("alert")})
    event = alert.events.get()
    AlertEvent.objects.filter(pk=event.pk).update(note=mark("event"))
    member = make_user(mark("user"))
    token, _ = ApiToken.issue(organization, ApiToken.Scope.READ, mark("token"))
    channel = make_channel(organization, mark("channel"), "webhook", url="https://hooks.example/h")
    # Every organisation has one of this name, so a policy written in the API names
    # it whichever organisation the caller writes in; the marked channel is left free
    # to delete.
    hook = make_channel(organization, SHARED_CHANNEL_NAME, "email", to=["oncall@example.com"])
    notification = Notification.objects.create(
        organization=organization,
        alert=alert,
        channel=channel,
        channel_name=channel.name,
        channel_kind=channel.kind,
        event="trigger",
        last_error=mark("notification"),
    )
    integration, key = make_integration(organization, f"am-{letter}", name=mark("alertmanager"))
    # The key is its intake URL's credential, shown once: kept here for lookups().
    integration.key = key
    held.objects = {
        "organization": organization,
        "service": service,
        "source": source,
        "runbook": runbook,
        "revision": runbook.revisions.get(),
        "rule": rule,
        "alert": alert,
        "event": event,
        "silence": make_silence(organization, comment=mark("silence")),
        "token": token,
        "membership": Membership.objects.create(
            organization=organization, user=member, role=Role.MANAGER
        ),
        "user": member,
        "channel": channel,
        "policy": make_policy(
            organization, f"policy-{letter}", name=mark("policy"), steps=[(0, [hook])]
        ),
        "notification": notification,
        "alertmanager": integration,
        "schedule": make_schedule(organization, f"schedule-{letter}", name=mark("schedule")),
        "responder": Responder.objects.create(organization=organization, user=member),
        # On the unmarked source "prom": an SLO protects its source from deletion.
        "slo": make_slo(organization, f"slo-{letter}", name=mark("slo"), service=service),
        # Under the organisation's ping key "default" (made by make_job).
        "job": make_job(organization, f"job-{letter}", name=mark("job"), service=service),
        # A key of no monitor (free to delete); the job's is its "default" one.
        "pingkey": PingKey.objects.create(organization=organization, name=mark("pingkey")),
    }
    # A run whose log names its job: the job's runs are read behind the job's wall.
    JobRun.objects.create(monitor=held.objects["job"], outcome="failure", excerpt=mark("job"))
    # The trail's record of the rule's creation, its name (the marker) in the diff.
    held.objects["audit"] = AuditEvent.objects.get(
        object_type="alerting.alertrule", object_id=str(rule.pk), action="created"
    )
    return held


def furnish_site() -> dict[str, models.Model]:
    """Rows of no organisation, for the admins only superusers use."""
    interval = IntervalSchedule.objects.create(every=7, period=IntervalSchedule.MINUTES)
    return {
        **_login_attempts(),
        "group": Group.objects.create(name="mark-g-group"),
        "interval": interval,
        "crontab": CrontabSchedule.objects.create(minute="7"),
        "solar": SolarSchedule.objects.create(event="sunrise", latitude=0, longitude=0),
        "clocked": ClockedSchedule.objects.create(clocked_time=timezone.now()),
        "task": PeriodicTask.objects.create(name="mark-g-task", task="x", interval=interval),
    }


def _login_attempts() -> dict[str, models.Model]:
    """django-axes' rows (login throttling), when it is installed."""
    if not apps.is_installed("axes"):
        return {}
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    attempt = {"user_agent": "matrix", "ip_address": "192.0.2.1", "username": "mark-g-login"}
    return {
        "access attempt": AccessAttempt.objects.create(
            **attempt, get_data="", post_data="", failures_since_start=1
        ),
        "access failure": AccessFailureLog.objects.create(**attempt),
        "access log": AccessLog.objects.create(**attempt),
    }


@dataclass
class World:
    own: Holdings
    foreign: Holdings
    third: Holdings
    shared: Holdings
    site: dict[str, models.Model]
    clients: dict[str, APIClient]

    def holdings(self, target: str) -> Holdings:
        return {OWN: self.own, FOREIGN: self.foreign, SHARED: self.shared}[target]

    def site_row(self, model: type[models.Model]) -> models.Model | None:
        for obj in self.site.values():
            if type(obj) is model:
                return obj
        return None


def build_world(own: Organization, foreign: Organization, member: Callable) -> World:
    """Three organisations and a client for every identity.

    `own` is the organisation the identities belong to, `foreign` one none of them
    does; the member of two organisations is a viewer of `own` and manages a third.
    """
    third = Organization.objects.create(slug="initech", name="Initech")
    clients: dict[str, APIClient] = {}
    for role in (Role.MANAGER, Role.RESPONDER, Role.VIEWER):
        clients[role] = _signed_in(member(own, role, username=f"{role}-of-own"))
    for scope in (ApiToken.Scope.READ, ApiToken.Scope.WRITE):
        clients[f"{scope}-token"] = _bearer(ApiToken.issue(own, scope, f"{scope} token")[1])
    two_orgs = member(own, Role.VIEWER, username="member-of-two")
    Membership.objects.create(organization=third, user=two_orgs, role=Role.MANAGER)
    clients["two-orgs"] = _signed_in(two_orgs)
    clients["staff-of-none"] = _signed_in(make_user("staff-of-none"))
    clients["anonymous"] = _client()
    shared = furnish_shared()
    return World(
        own=furnish(own, "a", shared),
        foreign=furnish(foreign, "b", shared),
        third=furnish(third, "c", shared),
        shared=shared,
        site=furnish_site(),
        clients=clients,
    )


def _client() -> APIClient:
    client = APIClient()
    client.raise_request_exception = False  # a 500 is a wrong cell, not the end of the run
    return client


def _signed_in(user) -> APIClient:
    client = _client()
    client.force_login(user)
    return client


def _bearer(token: str) -> APIClient:
    client = _client()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def one_click_token(held: Holdings) -> str:
    """A valid one-click link (paging/links.py) of the organisation's notification."""
    notification = held.objects["notification"]
    link = links.Link(
        notification.alert_id, notification.pk, links.Action.ACKNOWLEDGE, timezone.now()
    )
    return links.issue(link)


# --- what there is to check ------------------------------------------------------------


@functools.cache
def _generated_schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def openapi_schema() -> dict:
    """The OpenAPI schema as /api/v1/schema/ serves it, generated in process (once)."""
    return copy.deepcopy(_generated_schema())


@functools.cache
def api_operations() -> tuple[str, ...]:
    """Every operation of the generated OpenAPI schema, as 'METHOD /path/{param}/'."""
    schema = openapi_schema()
    return tuple(
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    )


@dataclass(frozen=True)
class Route:
    template: str  # "/alerts/<pk>/", parameters without their converters
    name: str  # "alerts:detail", or "" for an unnamed route
    callback: Callable


_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def _template(pattern: str) -> str:
    """'^rules/(?P<key>[^/]+)/$' and 'rules/<str:key>/' both read 'rules/<key>/'."""
    pattern = pattern.removeprefix("^").removesuffix("$")
    return _CONVERTER.sub(r"<\1>", _NAMED_GROUP.sub(r"<\1>", pattern))


def routes() -> list[Route]:
    """Every route of the URL configuration, walked recursively."""

    def walk(patterns, prefix: str, namespace: str) -> Iterator[Route]:
        for entry in patterns:
            here = prefix + _template(str(entry.pattern))
            if isinstance(entry, URLResolver):
                inner = namespace
                if entry.namespace:
                    inner = f"{namespace}{entry.namespace}:"
                yield from walk(entry.url_patterns, here, inner)
            elif isinstance(entry, URLPattern):
                name = f"{namespace}{entry.name}" if entry.name else ""
                yield Route("/" + here, name, entry.callback)

    return list(walk(get_resolver().url_patterns, "", ""))


ADMIN_MODEL_VIEWS = ("changelist", "add", "change", "delete", "history")


def admin_views() -> dict[str, tuple[type[models.Model], str]]:
    """The URL name (or, for the unnamed object redirect, the template) of each view of
    each registered ModelAdmin -> (model, view)."""
    found: dict[str, tuple[type[models.Model], str]] = {}
    for model in admin.site._registry:
        info = f"{model._meta.app_label}_{model._meta.model_name}"
        for view in ADMIN_MODEL_VIEWS:
            found[f"admin:{info}_{view}"] = (model, view)
        found[f"/admin/{model._meta.app_label}/{model._meta.model_name}/<object_id>/"] = (
            model,
            "redirect",
        )
    return found


def is_api_view(route: Route) -> bool:
    """A DRF viewset route: the schema lists these."""
    return hasattr(route.callback, "actions") and hasattr(route.callback, "cls")


def uncovered(
    api_rows: Mapping[str, Any],
    page_rows: Mapping[str, Any],
    admin_models: Mapping[str, Any],
) -> list[str]:
    """Everything there is to reach that no table has an expectation for, and every
    table row that names nothing there is."""
    problems: list[str] = []
    operations = set(api_operations())
    problems += [f"API operation with no row: {op}" for op in sorted(operations - set(api_rows))]
    problems += [f"API row for no operation: {op}" for op in sorted(set(api_rows) - operations)]
    # The schema names a primary key "id" where the route says "pk": compare shapes.
    schema_paths = {_shape(op.split(" ", 1)[1]) for op in operations}

    labels = {model._meta.label_lower for model in admin.site._registry}
    problems += [
        f"admin model with no row: {label}" for label in sorted(labels - set(admin_models))
    ]
    problems += [f"admin row for no model: {label}" for label in sorted(set(admin_models) - labels)]

    model_views = admin_views()
    page_templates = {key.split(" ", 1)[1] for key in page_rows}
    seen: set[str] = set()
    for route in routes():
        if route.name in model_views or route.template in model_views:
            continue
        if is_api_view(route):
            if _shape(route.template) not in schema_paths:
                problems.append(f"API route missing from the OpenAPI schema: {route.template}")
            continue
        seen.add(route.template)
        if route.template not in page_templates:
            problems.append(f"page or view with no row: {route.template} ({route.name or '-'})")
    problems += [f"page row for no route: {t}" for t in sorted(page_templates - seen)]
    return problems


def _shape(path: str) -> str:
    return re.sub(r"[{<]\w+[}>]", "{}", path)


# --- running a cell ------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One request and the answer it must get."""

    key: str  # the table row: "GET /api/v1/rules/{key}/"
    target: str  # NONE, OWN or FOREIGN
    method: str
    path: str
    expected: Answer
    body: Any = None
    as_json: bool = False
    shows: str = ""  # a marker the answer must contain (the object asked for)

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}, {self.target}]"


def answer_of(response: HttpResponse) -> str:
    if response.status_code in (301, 302):
        return f"{response.status_code} to {location(response)}"
    return str(response.status_code)


def location(response: HttpResponse) -> str:
    """Where a redirect goes, on this site: the test client's host name left out."""
    return response.get("Location", "").removeprefix("http://testserver")


def matches(response: HttpResponse, expected: Answer) -> bool:
    if isinstance(expected, Redirect):
        where = location(response)
        return response.status_code == 302 and (
            where.startswith(expected.to) if expected.prefix else where == expected.to
        )
    return response.status_code == expected


def content_of(response: HttpResponse) -> str:
    if response.streaming:
        body = b"".join(response.streaming_content)
    else:
        body = response.content
    text = body.decode(errors="replace") + "\n" + response.get("Location", "")
    return text.lower()


def check(client: APIClient, cell: Cell, foreign_markers: Mapping[str, str]) -> list[str]:
    """Make the request in a savepoint rolled back afterwards; say what is wrong."""
    with transaction.atomic():
        request = getattr(client, cell.method.lower())
        kwargs: dict[str, Any] = {}
        if cell.body is not None:
            kwargs["data"] = cell.body
            if cell.as_json:
                kwargs["format"] = "json"
        response = request(cell.path, **kwargs)
        transaction.set_rollback(True)
    problems = []
    if not matches(response, cell.expected):
        problems.append(f"{cell}: expected {cell.expected}, got {answer_of(response)}")
    text = content_of(response)
    leaked = sorted(kind for kind, marker in foreign_markers.items() if marker in text)
    if leaked:
        problems.append(f"{cell}: shows another organisation's {', '.join(leaked)}")
    if cell.shows and matches(response, cell.expected) and cell.shows not in text:
        problems.append(f"{cell}: answered {answer_of(response)} without {cell.shows}")
    return problems


def admin_url(model: type[models.Model], view: str, obj: models.Model | None = None) -> str:
    info = f"{model._meta.app_label}_{model._meta.model_name}"
    if view == "redirect":
        return reverse(f"admin:{info}_change", args=[quote(obj.pk)]).removesuffix("change/")
    if obj is None:
        return reverse(f"admin:{info}_{view}")
    return reverse(f"admin:{info}_{view}", args=[quote(obj.pk)])


def fill(template: str, values: Mapping[str, Any]) -> str:
    """'/api/v1/rules/{key}/' or '/alerts/<pk>/' with the values given."""
    return re.sub(r"[{<](\w+)[}>]", lambda m: str(values[m.group(1)]), template)


def lookups(obj: models.Model) -> dict[str, Any]:
    """The values an object is named by in URLs, under every name a route uses."""
    values: dict[str, Any] = {"id": obj.pk, "pk": obj.pk, "object_id": obj.pk}
    for name in ("slug", "key", "name", "export_key"):
        if hasattr(obj, name):
            values[name] = getattr(obj, name)
    if getattr(obj, "ping_key", None) is not None:  # /ping/<ping_key>/<slug>
        values["ping_key"] = obj.ping_key.key
    if isinstance(obj, RunbookRevision):  # /runbooks/<slug>/revisions/<revision_id>/
        values.update(slug=obj.runbook.slug, revision_id=obj.pk)
    return values
