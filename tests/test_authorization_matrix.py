"""The authorization matrix: every API operation, page and admin view, for every kind of
caller, against an object of the caller's organisation and one of another.

Each cell checks the answer and that the body (and any redirect) names nothing of the
other organisation: every object there carries a marker string that must not show up.
What there is to check comes from the OpenAPI schema and the URL resolver, so a new
endpoint, page or admin model without a row here fails test_every_route_has_a_row.

The identities (columns, in this order):
  manager, responder, viewer   members of the organisation, signed in
  read-token, write-token      API tokens of the organisation
  two-orgs                     a viewer of the organisation who manages a third one
  staff-of-none                a staff account that belongs to no organisation
  anonymous                    nobody
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType

from controlplane.audit.models import AuditEvent
from tests import authorization as authz
from tests.authorization import (
    ADMIN_INDEX,
    ADMIN_LOGIN,
    FOREIGN,
    IDENTITIES,
    LOGIN,
    MISSING,
    NONE,
    OK,
    OWN,
    SHARED,
    Answer,
    Cell,
    Redirect,
    World,
    row,
)
from tests.factories import ONE_SHIFT_ICS

pytestmark = pytest.mark.django_db

# --- the API ---------------------------------------------------------------------------

READ, WRITE, RESPOND, PUBLIC, NO_ROUTE = "read", "write", "respond", "public", "no route"
# The audit trail: the organisation's tokens (read scope included) and its managers.
TRAIL = "audit trail"
# Alertmanager's two ways in: a write token, or the integration's key in the URL.
AM_TOKEN, AM_KEY = "alertmanager with a token", "alertmanager with a key"

# Who may do what through the API. A caller who may not write anywhere is refused
# before any object is looked up (403); another organisation's object is not found.
# The member of two organisations creates in the one it manages, the third.
API_ACCESS = {
    #                     manager responder viewer read-tok write-tok two-orgs staff-none anon
    (READ, NONE):     row(OK,     OK,       OK,    OK,      OK,       OK,      403,       401),
    (READ, OWN):      row(OK,     OK,       OK,    OK,      OK,       OK,      403,       401),
    (READ, FOREIGN):  row(404,    404,      404,   404,     404,      404,     403,       401),
    (READ, SHARED):   row(OK,     OK,       OK,    OK,      OK,       OK,      403,       401),
    (WRITE, NONE):    row(OK,     403,      403,   403,     OK,       OK,      403,       401),
    (WRITE, OWN):     row(OK,     403,      403,   403,     OK,       403,     403,       401),
    (WRITE, FOREIGN): row(404,    403,      403,   403,     404,      404,     403,       401),
    (RESPOND, OWN):   row(OK,     OK,       403,   403,     OK,       403,     404,       401),
    (RESPOND, FOREIGN): row(404,  404,      404,   403,     404,      404,     404,       401),
    # Sessions are no way in for Alertmanager: a write token is.
    (AM_TOKEN, NONE): row(401,    401,      401,   403,     OK,       401,     401,       401),
    # The key is the credential, whoever holds it: it opens its own integration only.
    (AM_KEY, OWN):    row(OK,     OK,       OK,    OK,      OK,       OK,      OK,        OK),
    (AM_KEY, FOREIGN): row(OK,    OK,       OK,    OK,      OK,       OK,      OK,        OK),
    # The member of two organisations reads the trail of the one it manages only.
    (TRAIL, NONE):    row(OK,     403,      403,   OK,      OK,       OK,      403,       401),
    (TRAIL, OWN):     row(OK,     403,      403,   OK,      OK,       404,     403,       401),
    (TRAIL, FOREIGN): row(404,    403,      403,   404,     404,      404,     403,       401),
}  # fmt: skip


@dataclass(frozen=True)
class Op:
    """An API operation: who may (access), on what (kind: the object in the path),
    the answer when allowed, the body sent, and the kind a list must show."""

    access: str
    kind: str = ""
    ok: Answer = 200
    body: dict | Callable[[Any], dict] | None = None
    lists: str = ""


NEW_RULE = {"key": "matrix-new", "name": "New", "expr": "alerts.firing"}
NEW_SOURCE = {"name": "matrix-new", "url": "http://prometheus.example:9090"}
NEW_CHANNEL = {"name": "matrix-new", "kind": "email", "config": {"to": ["new@example.com"]}}
STEPS = [{"delay": "0s", "channels": [authz.SHARED_CHANNEL_NAME]}]
NEW_POLICY = {"slug": "matrix-new", "name": "New", "steps": STEPS}
NEW_SCHEDULE = {"slug": "matrix-new", "name": "New", "ics_text": ONE_SHIFT_ICS}
# On the source every organisation has under this name (authz.furnish).
NEW_SLO = {"slug": "matrix-new", "name": "New", "source": "prom", "objective": 99.9,
           "sli": {"kind": "ratio", "bad": 'x_total{code="5xx"}', "total": "x_total"}}  # fmt: skip
NEW_JOB = {"slug": "matrix-new", "name": "New", "schedule": "1h"}
AM_PAYLOAD = {
    "version": "4",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "Matrix"},
            "startsAt": "2026-01-01T00:00:00Z",
            "fingerprint": "0123456789abcdef",
        }
    ],
}

API = {
    "GET /api/v1/alerts/":                   Op(READ, lists="alert"),
    "GET /api/v1/alerts/{id}/":              Op(READ, "alert"),
    "POST /api/v1/alerts/{id}/acknowledge/": Op(RESPOND, "alert", body={"note": "on it"}),
    "POST /api/v1/alerts/{id}/resolve/":     Op(RESPOND, "alert", body={}),
    "GET /api/v1/rules/":                    Op(READ, lists="rule"),
    "POST /api/v1/rules/":                   Op(WRITE, ok=201, body=NEW_RULE),
    "GET /api/v1/rules/{key}/":              Op(READ, "rule"),
    "PUT /api/v1/rules/{key}/":              Op(WRITE, "rule", body=lambda rule: {
                                                 "key": rule.key, "name": "Renamed",
                                                 "expr": "alerts.firing"}),
    "PATCH /api/v1/rules/{key}/":            Op(WRITE, "rule", body={"name": "Renamed"}),
    "DELETE /api/v1/rules/{key}/":           Op(WRITE, "rule", ok=204),
    "GET /api/v1/runbooks/":                 Op(READ, lists="runbook"),
    "GET /api/v1/runbooks/{slug}/":          Op(READ, "runbook"),
    "GET /api/v1/services/":                 Op(READ, lists="service"),
    "GET /api/v1/services/{slug}/":          Op(READ, "service"),
    "GET /api/v1/sources/":                  Op(READ, lists="source"),
    "POST /api/v1/sources/":                 Op(WRITE, ok=201, body=NEW_SOURCE),
    "GET /api/v1/sources/{name}/":           Op(READ, "source"),
    "PATCH /api/v1/sources/{name}/":         Op(WRITE, "source", body={"timeout": 3}),
    "DELETE /api/v1/sources/{name}/":        Op(WRITE, "source", ok=204),
    "GET /api/v1/channels/":                 Op(READ, lists="channel"),
    "POST /api/v1/channels/":                Op(WRITE, ok=201, body=NEW_CHANNEL),
    "GET /api/v1/channels/{name}/":          Op(READ, "channel"),
    "PATCH /api/v1/channels/{name}/":        Op(WRITE, "channel", body={
                                                 "config": {"url": "https://hooks.example/2"}}),
    "DELETE /api/v1/channels/{name}/":       Op(WRITE, "channel", ok=204),
    "POST /api/v1/channels/{name}/test/":    Op(WRITE, "channel", ok=202, body={}),
    "GET /api/v1/escalation-policies/":      Op(READ, lists="policy"),
    "POST /api/v1/escalation-policies/":     Op(WRITE, ok=201, body=NEW_POLICY),
    "GET /api/v1/escalation-policies/{slug}/": Op(READ, "policy"),
    "PUT /api/v1/escalation-policies/{slug}/": Op(WRITE, "policy", body=lambda policy: {
                                                 "slug": policy.slug, "name": "Renamed",
                                                 "steps": STEPS}),
    "PATCH /api/v1/escalation-policies/{slug}/": Op(WRITE, "policy", body={"repeat": 0}),
    "DELETE /api/v1/escalation-policies/{slug}/": Op(WRITE, "policy", ok=204),
    "GET /api/v1/notifications/":            Op(READ, lists="notification"),
    "POST /api/v1/integrations/alertmanager/": Op(AM_TOKEN, body=AM_PAYLOAD),
    "POST /api/v1/integrations/alertmanager/{key}/": Op(AM_KEY, "alertmanager", body=AM_PAYLOAD),
    "GET /api/v1/schedules/":                Op(READ, lists="schedule"),
    "POST /api/v1/schedules/":               Op(WRITE, ok=201, body=NEW_SCHEDULE),
    "GET /api/v1/schedules/{slug}/":         Op(READ, "schedule"),
    "PATCH /api/v1/schedules/{slug}/":       Op(WRITE, "schedule", body={"name": "Renamed"}),
    "DELETE /api/v1/schedules/{slug}/":      Op(WRITE, "schedule", ok=204),
    "GET /api/v1/schedules/{slug}/oncall/":  Op(READ, "schedule"),
    "POST /api/v1/schedules/{slug}/sync/":   Op(WRITE, "schedule", ok=202, body={}),
    "GET /api/v1/slos/":                     Op(READ, lists="slo"),
    "POST /api/v1/slos/":                    Op(WRITE, ok=201, body=NEW_SLO),
    "GET /api/v1/slos/{slug}/":              Op(READ, "slo"),
    "PUT /api/v1/slos/{slug}/":              Op(WRITE, "slo", body=lambda slo: {
                                                 **NEW_SLO, "slug": slo.slug}),
    "PATCH /api/v1/slos/{slug}/":            Op(WRITE, "slo", body={"name": "Renamed"}),
    "DELETE /api/v1/slos/{slug}/":           Op(WRITE, "slo", ok=204),
    "GET /api/v1/slos/{slug}/history/":      Op(READ, "slo"),
    "GET /api/v1/jobs/":                     Op(READ, lists="job"),
    "POST /api/v1/jobs/":                    Op(WRITE, ok=201, body=NEW_JOB),
    "GET /api/v1/jobs/{slug}/":              Op(READ, "job"),
    "PATCH /api/v1/jobs/{slug}/":            Op(WRITE, "job", body={"name": "Renamed"}),
    "DELETE /api/v1/jobs/{slug}/":           Op(WRITE, "job", ok=204),
    "GET /api/v1/jobs/{slug}/runs/":         Op(READ, "job"),
    "POST /api/v1/jobs/{slug}/start/":       Op(WRITE, "job", body={}),
    "POST /api/v1/jobs/{slug}/success/":     Op(WRITE, "job", body={}),
    "POST /api/v1/jobs/{slug}/fail/":        Op(WRITE, "job", body={"exit_code": 3}),
    # No `lists`: the member of two organisations lists the trail of the one it manages.
    "GET /api/v1/audit/":                    Op(TRAIL),
    "GET /api/v1/audit/{id}/":               Op(TRAIL, "audit"),
    # The alert's opening, its summary the marker (the world's silence and notification
    # are drawn too when in range; another organisation's never).
    "GET /api/v1/annotations/":              Op(READ, lists="alert"),
}  # fmt: skip

# --- the admin's models -------------------------------------------------------------

SCOPED, READ_ONLY, MANAGERS, ORGANIZATIONS = "scoped", "read-only", "managers", "organizations"
SUPERUSERS = "superusers"
# The audit trail: read by managers, written by nobody.
TRAIL_ADMIN = "audit trail"

# Every registered ModelAdmin: how its views are guarded.
ADMIN_MODELS = {
    "catalog.organization":             ORGANIZATIONS,
    "catalog.service":                  SCOPED,
    "catalog.metricsource":             SCOPED,
    "catalog.apitoken":                 MANAGERS,
    "catalog.membership":               MANAGERS,
    "alerting.alertrule":               SCOPED,
    "alerting.silence":                 SCOPED,
    "alerting.alert":                   READ_ONLY,
    "alerting.alertevent":              READ_ONLY,
    "runbooks.runbook":                 SCOPED,
    "paging.notificationchannel":       SCOPED,
    "paging.escalationpolicy":          SCOPED,
    "paging.notification":              READ_ONLY,
    "paging.alertmanagerintegration":   SCOPED,
    "oncall.oncallschedule":            SCOPED,
    "oncall.responder":                 SCOPED,
    "slo.slo":                          SCOPED,
    "jobs.jobmonitor":                  SCOPED,
    # A ping key is a bearer secret: like API tokens, for managers only.
    "jobs.pingkey":                     MANAGERS,
    "auth.user":                        SUPERUSERS,
    "auth.group":                       SUPERUSERS,
    "django_celery_beat.periodictask":  SUPERUSERS,
    "django_celery_beat.intervalschedule": SUPERUSERS,
    "django_celery_beat.crontabschedule": SUPERUSERS,
    "django_celery_beat.solarschedule": SUPERUSERS,
    "django_celery_beat.clockedschedule": SUPERUSERS,
    "axes.accessattempt":               SUPERUSERS,
    "axes.accessfailurelog":            SUPERUSERS,
    "axes.accesslog":                   SUPERUSERS,
    "audit.auditevent":                 TRAIL_ADMIN,
}  # fmt: skip
ORGANIZATION_APPS = {
    label.split(".")[0] for label, how in ADMIN_MODELS.items() if how != SUPERUSERS
}
# Apps of models for managers only: the others see no model there.
MANAGERS_ONLY_APPS = ORGANIZATION_APPS - {
    label.split(".")[0]
    for label, how in ADMIN_MODELS.items()
    if how not in (SUPERUSERS, MANAGERS, TRAIL_ADMIN)
}

# --- pages, and the admin's own views ----------------------------------------------------

SIGNED_IN, MEMBERS, RESPONDERS, NOT_ALLOWED = "signed in", "members", "responders", "no GET"
STAFF, ADMIN_LOGIN_PAGE = "staff", "admin login"
READERS, READERS_APP, SUPERUSERS_APP = "readers", "readers' app", "superusers' app"
MANAGERS_APP = "managers' app"
LOGGING_OUT, ADMIN_LOGGING_OUT, ADMIN_NO_ROUTE = "log out", "admin log out", "admin: no route"
SCRAPERS = "scrapers"
LINK_HOLDERS = "link holders"
KEY_HOLDERS = "key holders"

# Pages know sessions only: a bearer token is nobody there.
PAGE_ACCESS = {
    #                        manager responder viewer read-tok write-tok two-orgs staff-none anon
    (PUBLIC, NONE):      row(OK,     OK,       OK,    OK,      OK,       OK,      OK,        OK),
    (NO_ROUTE, NONE):    row(404,    404,      404,   404,     404,      404,     404,       404),
    # Logging out is a POST (a link cannot log anyone out).
    (LOGGING_OUT, NONE): row(405,    405,      405,   405,     405,      405,     405,       405),
    # The matrix sets a metrics token; nobody here holds it, API tokens are not it.
    (SCRAPERS, NONE):    row(401,    401,      401,   401,     401,      401,     401,       401),
    (NOT_ALLOWED, OWN):  row(405,    405,      405,   405,     405,      405,     405,       405),
    (SIGNED_IN, NONE):   row(OK,     OK,       OK,    LOGIN,   LOGIN,    OK,      OK,        LOGIN),
    (MEMBERS, OWN):      row(OK,     OK,       OK,    LOGIN,   LOGIN,    OK,      404,       LOGIN),
    (MEMBERS, FOREIGN):  row(404,    404,      404,   LOGIN,   LOGIN,    404,     404,       LOGIN),
    # Shared runbooks are for members of some organisation, not for any account.
    (MEMBERS, SHARED):   row(OK,     OK,       OK,    LOGIN,   LOGIN,    OK,      404,       LOGIN),
    (RESPONDERS, OWN):   row(OK,     OK,       403,   LOGIN,   LOGIN,    403,     404,       LOGIN),
    (RESPONDERS, FOREIGN): row(404,  404,      404,   LOGIN,   LOGIN,    404,     404,       LOGIN),
    # A signed one-click link is its own credential: the same answer whoever follows
    # it, signed in or not; a link of one alert opens nothing of another.
    (LINK_HOLDERS, OWN): row(OK,     OK,       OK,    OK,      OK,       OK,      OK,        OK),
    (LINK_HOLDERS, FOREIGN): row(400, 400,     400,   400,     400,      400,     400,       400),
    # A schedule's ICS export: the key in its URL is the credential (calendar apps hold
    # no session), whoever follows it and whichever organisation it is of.
    (KEY_HOLDERS, OWN):  row(OK,     OK,       OK,    OK,      OK,       OK,      OK,        OK),
    (KEY_HOLDERS, FOREIGN): row(OK,  OK,       OK,    OK,      OK,       OK,      OK,        OK),
    # The admin site's own views: staff accounts, whatever their organisations.
    (STAFF, NONE):       row(OK, OK, OK, ADMIN_LOGIN, ADMIN_LOGIN, OK, OK, ADMIN_LOGIN),
    (ADMIN_LOGIN_PAGE, NONE): row(ADMIN_INDEX, ADMIN_INDEX, ADMIN_INDEX, OK, OK, ADMIN_INDEX,
                                  ADMIN_INDEX, OK),
    (ADMIN_LOGGING_OUT, NONE): row(405, 405, 405, ADMIN_INDEX, ADMIN_INDEX, 405, 405, ADMIN_INDEX),
    (ADMIN_NO_ROUTE, NONE): row(404, 404, 404, ADMIN_LOGIN, ADMIN_LOGIN, 404, 404, ADMIN_LOGIN),
    # Readers of some organisation's rows (the autocomplete answers with them).
    (READERS, NONE):     row(OK, OK, OK, ADMIN_LOGIN, ADMIN_LOGIN, OK, 403, ADMIN_LOGIN),
    # An app's index "does not exist" to those who see none of its models.
    (READERS_APP, NONE): row(OK, OK, OK, ADMIN_LOGIN, ADMIN_LOGIN, OK, 404, ADMIN_LOGIN),
    (SUPERUSERS_APP, NONE): row(404, 404, 404, ADMIN_LOGIN, ADMIN_LOGIN, 404, 404, ADMIN_LOGIN),
    (MANAGERS_APP, NONE): row(OK, 404, 404, ADMIN_LOGIN, ADMIN_LOGIN, OK, 404, ADMIN_LOGIN),
    (SUPERUSERS, OWN):   row(403, 403, 403, ADMIN_LOGIN, ADMIN_LOGIN, 403, 403, ADMIN_LOGIN),
}  # fmt: skip


@dataclass(frozen=True)
class Page:
    """A page: who may see it (access), the object in its path (kind) or fixed path
    values (args), or a path to ask for outright (catch-alls)."""

    access: str
    kind: str = ""
    ok: Answer = 200
    args: dict[str, str] = field(default_factory=dict)
    path: str = ""
    body: dict | None = None
    lists: str = ""


def admin_app_pages() -> list[Page]:
    """/admin/<app>/ of every app with a registered model."""
    labels = sorted({model._meta.app_label for model in admin.site._registry})
    return [
        Page(MANAGERS_APP if label in MANAGERS_ONLY_APPS
             else READERS_APP if label in ORGANIZATION_APPS else SUPERUSERS_APP,
             args={"app_label": label})
        for label in labels
    ]  # fmt: skip


BACK = "back to the object's page"
# The token of a one-click link of the caller's organisation's alert, whichever alert
# the path names (another's: the link is refused).
ONE_CLICK = "a signed link of the own alert"
AUTOCOMPLETE = "/admin/autocomplete/?app_label=alerting&model_name=alertrule&field_name=service"

PAGES: dict[str, Page | list[Page]] = {
    "GET /":                                   Page(SIGNED_IN),
    "GET /healthz":                            Page(PUBLIC),
    "GET /metrics":                            Page(SCRAPERS),
    "GET /alerts/":                            Page(SIGNED_IN, lists="alert"),
    "GET /alerts/<pk>/":                       Page(MEMBERS, "alert"),
    "POST /alerts/<pk>/acknowledge/":          Page(RESPONDERS, "alert", ok=BACK,
                                                    body={"note": "on it"}),
    "GET /alerts/<pk>/acknowledge/":           Page(NOT_ALLOWED, "alert"),
    "POST /alerts/<pk>/resolve/":              Page(RESPONDERS, "alert", ok=BACK,
                                                    body={}),
    "GET /alerts/<pk>/resolve/":               Page(NOT_ALLOWED, "alert"),
    "POST /alerts/<pk>/reapply/":              Page(RESPONDERS, "alert", ok=BACK, body={}),
    "GET /alerts/<pk>/reapply/":               Page(NOT_ALLOWED, "alert"),
    "GET /alerts/<pk>/respond/<token>/":       Page(LINK_HOLDERS, "alert",
                                                    args={"token": ONE_CLICK}),
    "POST /alerts/<pk>/respond/<token>/":      Page(LINK_HOLDERS, "alert",
                                                    args={"token": ONE_CLICK}, body={}),
    "GET /runbooks/":                          Page(SIGNED_IN, lists="runbook"),
    "GET /oncall/":                            Page(SIGNED_IN, lists="schedule"),
    "GET /oncall/<slug>/":                     Page(MEMBERS, "schedule"),
    "GET /oncall/feeds/<export_key>.ics":      Page(KEY_HOLDERS, "schedule"),
    "GET /slos/":                              Page(SIGNED_IN, lists="slo"),
    # The knowledge base: the repository's docs/, the same for every organisation.
    "GET /docs/":                              Page(SIGNED_IN),
    "GET /docs/<address>/":                    Page(SIGNED_IN,
                                                    args={"address": "observability/runbooks"}),
    "GET /slos/<slug>/":                       Page(MEMBERS, "slo"),
    "GET /jobs/":                              Page(SIGNED_IN, lists="job"),
    "GET /jobs/<slug>/":                       Page(MEMBERS, "job"),
    # The Healthchecks ping API: the ping key in the URL is the credential.
    "GET /ping/<ping_key>/<slug>":             Page(KEY_HOLDERS, "job"),
    "GET /ping/<ping_key>/<slug>/start":       Page(KEY_HOLDERS, "job"),
    "GET /ping/<ping_key>/<slug>/fail":        Page(KEY_HOLDERS, "job"),
    "GET /ping/<ping_key>/<slug>/log":         Page(KEY_HOLDERS, "job"),
    "GET /ping/<ping_key>/<slug>/<exit_status>": Page(KEY_HOLDERS, "job",
                                                      args={"exit_status": "0"}),
    "GET /ping/<rest>":                        Page(NO_ROUTE, path="/ping/nothing-here"),
    "GET /runbooks/<slug>/":                   Page(MEMBERS, "runbook"),
    "GET /runbooks/<slug>/revisions/":         Page(MEMBERS, "runbook"),
    "GET /runbooks/<slug>/revisions/<revision_id>/": Page(MEMBERS, "revision"),
    "GET /accounts/login/":                    Page(PUBLIC),
    "GET /accounts/logout/":                   Page(LOGGING_OUT),
    "GET /accounts/password_change/":          Page(SIGNED_IN),
    "GET /accounts/password_change/done/":     Page(SIGNED_IN),
    "GET /accounts/password_reset/":           Page(PUBLIC),
    "GET /accounts/password_reset/done/":      Page(PUBLIC),
    "GET /accounts/reset/<uidb64>/<token>/":   Page(PUBLIC, args={"uidb64": "MQ",
                                                                  "token": "set-password"}),
    "GET /accounts/reset/done/":               Page(PUBLIC),
    "GET /api/v1/schema/":                     Page(PUBLIC),
    "GET /api/v1/docs/":                       Page(PUBLIC),
    "GET /api/v1/redoc/":                      Page(PUBLIC),
    "GET /api/v1/":                            Page(NO_ROUTE, path="/api/v1/nothing-here/"),
    "GET /api/":                               Page(NO_ROUTE, path="/api/v2/services/"),
    "GET /admin/":                             Page(STAFF),
    "GET /admin/login/":                       Page(ADMIN_LOGIN_PAGE),
    "GET /admin/logout/":                      Page(ADMIN_LOGGING_OUT),
    "GET /admin/password_change/":             Page(STAFF),
    "GET /admin/password_change/done/":        Page(STAFF),
    "GET /admin/jsi18n/":                      Page(STAFF),
    "GET /admin/autocomplete/":                Page(READERS, path=AUTOCOMPLETE,
                                                    lists="service"),
    "GET /admin/<app_label>/":                 admin_app_pages(),
    "GET /admin/<url>":                        Page(ADMIN_NO_ROUTE, path="/admin/nothing-here/"),
    "GET /admin/auth/user/<id>/password/":     Page(SUPERUSERS, "user"),
    # Cells of their own: see VIEW_ON_SITE.
    "GET /admin/r/<content_type_id>/<object_id>/": [],
}  # fmt: skip

# --- the admin's model views --------------------------------------------------------------

L = ADMIN_LOGIN
# The delete page's POST: the object is deleted (in a savepoint rolled back afterwards)
# and the answer goes back to the list.
DELETED = "delete (POST)"
# The admin asks for a session of a staff account: tokens and anonymous visitors are
# sent to its login page. An object it cannot see is "missing": back to the index.
# The change and delete pages ask for the permission (to view, to delete) before they
# look for the object: those who have it nowhere get a 403 whatever the object.
# An object's history is its audit trail (controlplane/audit/history.py): managers of its
# organisation are sent to its events; others who see the object are refused.
ADMIN_ACCESS = {
    SCOPED: {
        #                          manager  responder viewer   rt wt two-orgs staff-none anon
        ("changelist", NONE): row(OK,      OK,       OK,      L, L, OK,      403,       L),
        ("add", NONE):        row(OK,      403,      403,     L, L, OK,      403,       L),
        ("change", OWN):      row(OK,      OK,       OK,      L, L, OK,      403,       L),
        ("change", FOREIGN):  row(MISSING, MISSING,  MISSING, L, L, MISSING, 403,       L),
        ("delete", OWN):      row(OK,      403,      403,     L, L, 403,     403,       L),
        ("delete", FOREIGN):  row(MISSING, 403,      403,     L, L, MISSING, 403,       L),
        ("history", OWN):     row(OK,      403,      403,     L, L, 403,     MISSING,   L),
        ("history", FOREIGN): row(MISSING, MISSING,  MISSING, L, L, MISSING, MISSING,   L),
        (DELETED, OWN):       row(OK,      403,      403,     L, L, 403,     403,       L),
        (DELETED, FOREIGN):   row(MISSING, 403,      403,     L, L, MISSING, 403,       L),
        # Rows shared by every organisation (runbooks): read by members, changed by
        # superusers only.
        ("change", SHARED):   row(OK,      OK,       OK,      L, L, OK,      403,       L),
        ("delete", SHARED):   row(403,     403,      403,     L, L, 403,     403,       L),
        # The trail of a shared row is of no organisation: superusers'.
        ("history", SHARED):  row(403,     403,      403,     L, L, 403,     MISSING,   L),
        (DELETED, SHARED):    row(403,     403,      403,     L, L, 403,     403,       L),
    },
    # Alerts and their timeline change through their recorder only: no add, no delete.
    READ_ONLY: {
        ("changelist", NONE): row(OK,      OK,       OK,      L, L, OK,      403,       L),
        ("add", NONE):        row(403,     403,      403,     L, L, 403,     403,       L),
        ("change", OWN):      row(OK,      OK,       OK,      L, L, OK,      403,       L),
        ("change", FOREIGN):  row(MISSING, MISSING,  MISSING, L, L, MISSING, 403,       L),
        ("delete", OWN):      row(403,     403,      403,     L, L, 403,     403,       L),
        ("delete", FOREIGN):  row(403,     403,      403,     L, L, 403,     403,       L),
        ("history", OWN):     row(OK,      403,      403,     L, L, 403,     MISSING,   L),
        ("history", FOREIGN): row(MISSING, MISSING,  MISSING, L, L, MISSING, MISSING,   L),
        (DELETED, OWN):       row(403,     403,      403,     L, L, 403,     403,       L),
        (DELETED, FOREIGN):   row(403,     403,      403,     L, L, 403,     403,       L),
    },
    # Who has access is for managers only: to others the rows do not exist.
    MANAGERS: {
        ("changelist", NONE): row(OK,      403,      403,     L, L, OK,      403,       L),
        ("add", NONE):        row(OK,      403,      403,     L, L, OK,      403,       L),
        ("change", OWN):      row(OK,      403,      403,     L, L, MISSING, 403,       L),
        ("change", FOREIGN):  row(MISSING, 403,      403,     L, L, MISSING, 403,       L),
        ("delete", OWN):      row(OK,      403,      403,     L, L, MISSING, 403,       L),
        ("delete", FOREIGN):  row(MISSING, 403,      403,     L, L, MISSING, 403,       L),
        ("history", OWN):     row(OK,      MISSING,  MISSING, L, L, MISSING, MISSING,   L),
        ("history", FOREIGN): row(MISSING, MISSING,  MISSING, L, L, MISSING, MISSING,   L),
        (DELETED, OWN):       row(OK,      403,      403,     L, L, MISSING, 403,       L),
        (DELETED, FOREIGN):   row(MISSING, 403,      403,     L, L, MISSING, 403,       L),
    },
    # Organisations are made and deleted by superusers; their managers rename them.
    ORGANIZATIONS: {
        ("changelist", NONE): row(OK,      OK,       OK,      L, L, OK,      403,       L),
        ("add", NONE):        row(403,     403,      403,     L, L, 403,     403,       L),
        ("change", OWN):      row(OK,      OK,       OK,      L, L, OK,      403,       L),
        ("change", FOREIGN):  row(MISSING, MISSING,  MISSING, L, L, MISSING, 403,       L),
        ("delete", OWN):      row(403,     403,      403,     L, L, 403,     403,       L),
        ("delete", FOREIGN):  row(403,     403,      403,     L, L, 403,     403,       L),
        ("history", OWN):     row(OK,      403,      403,     L, L, 403,     MISSING,   L),
        ("history", FOREIGN): row(MISSING, MISSING,  MISSING, L, L, MISSING, MISSING,   L),
        (DELETED, OWN):       row(403,     403,      403,     L, L, 403,     403,       L),
        (DELETED, FOREIGN):   row(403,     403,      403,     L, L, 403,     403,       L),
    },
    # Accounts, groups, beat schedules, login attempts: rows of no organisation.
    SUPERUSERS: {
        ("changelist", NONE): row(403,     403,      403,     L, L, 403,     403,       L),
        ("add", NONE):        row(403,     403,      403,     L, L, 403,     403,       L),
        ("change", NONE):     row(403,     403,      403,     L, L, 403,     403,       L),
        ("delete", NONE):     row(403,     403,      403,     L, L, 403,     403,       L),
        ("history", NONE):    row(403,     403,      403,     L, L, 403,     403,       L),
        (DELETED, NONE):      row(403,     403,      403,     L, L, 403,     403,       L),
    },
    # The audit trail: its organisation's managers read it; nobody adds, changes or
    # deletes an event (a POST is refused, and recorded).
    TRAIL_ADMIN: {
        ("changelist", NONE): row(OK,      403,      403,     L, L, OK,      403,       L),
        ("add", NONE):        row(403,     403,      403,     L, L, 403,     403,       L),
        ("change", OWN):      row(OK,      403,      403,     L, L, MISSING, 403,       L),
        ("change", FOREIGN):  row(MISSING, 403,      403,     L, L, MISSING, 403,       L),
        ("delete", OWN):      row(403,     403,      403,     L, L, 403,     403,       L),
        ("delete", FOREIGN):  row(403,     403,      403,     L, L, 403,     403,       L),
        ("history", OWN):     row(OK,      MISSING,  MISSING, L, L, MISSING, MISSING,   L),
        ("history", FOREIGN): row(MISSING, MISSING,  MISSING, L, L, MISSING, MISSING,   L),
        (DELETED, OWN):       row(403,     403,      403,     L, L, 403,     403,       L),
        (DELETED, FOREIGN):   row(403,     403,      403,     L, L, 403,     403,       L),
    },
}  # fmt: skip
# The bare object URL redirects any staff account to the change page, which decides.
for _views in ADMIN_ACCESS.values():
    for _target in {target for (view, target) in _views if view == "change"}:
        _views[("redirect", _target)] = row(OK, OK, OK, L, L, OK, OK, L)

# --- view on site ------------------------------------------------------------------------

# /admin/r/<content type>/<id>/ sends staff to an object's page: only for objects they
# may read; another organisation's object is not found, like everywhere else.
VIEW_ON_SITE = {
    #               manager responder viewer rt wt two-orgs staff-none anon
    OWN:        row(OK,     OK,       OK,    L, L, OK,      404,       L),
    FOREIGN:    row(404,    404,      404,   L, L, 404,     404,       L),
    SHARED:     row(OK,     OK,       OK,    L, L, OK,      404,       L),
}  # fmt: skip

# --- known gaps --------------------------------------------------------------------------

# Cells that answer otherwise than the tables say today: (identity, row, target) ->
# (the answer given now, why). The cell is checked against the answer given now, for
# leaks as for every other; when the gap closes it fails until its line here goes.
KNOWN_GAPS: dict[tuple[str, str, str], tuple[object, str]] = {}

# --- the tests ---------------------------------------------------------------------------


def test_every_route_has_a_row():
    problems = authz.uncovered(API, PAGES, ADMIN_MODELS)

    assert not problems, "the matrix does not know:\n  " + "\n  ".join(problems)


def test_the_tables_cover_every_access_and_target():
    missing = [
        f"{key}: {access}/{target}"
        for key, op in API.items()
        for target in _api_targets(op)
        for access in [op.access]
        if (access, target) not in API_ACCESS
    ]
    for key, pages in PAGES.items():
        for page in pages if isinstance(pages, list) else [pages]:
            missing += [
                f"{key}: {page.access}/{target}"
                for target in _page_targets(page)
                if (page.access, target) not in PAGE_ACCESS
            ]

    assert missing == []


METRICS_TOKEN = "metrics-token-of-the-matrix-0123456789"


@pytest.fixture
def world(org, other_org, member, settings) -> World:
    # Nobody here logs in with a password: hash the accounts' quickly.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.OBSERVABILITY = {**settings.OBSERVABILITY, "METRICS_TOKEN": METRICS_TOKEN}
    return authz.build_world(org, other_org, member)


@pytest.mark.parametrize("identity", IDENTITIES)
def test_matrix(world, identity):
    client = world.clients[identity]
    wrong: list[str] = []
    cells = [*api_cells(world, identity), *page_cells(world, identity)]
    cells += [*admin_cells(world, identity), *view_on_site_cells(world, identity)]
    gaps = {(i, key, target): gap for (i, key, target), gap in KNOWN_GAPS.items() if i == identity}
    for cell in cells:
        gap = gaps.pop((identity, cell.key, cell.target), None)
        if gap is None:
            wrong += authz.check(client, cell, world.foreign.markers)
            continue
        now, why = gap
        for problem in authz.check(client, replace(cell, expected=now), world.foreign.markers):
            wrong.append(f"{problem} (a known gap: {why}; closed? remove it from KNOWN_GAPS)")
    wrong += [f"KNOWN_GAPS names no cell: {key}" for key in gaps]

    assert not wrong, f"{len(wrong)} of {len(cells)} cells wrong for {identity}:\n  " + (
        "\n  ".join(wrong)
    )


# --- from tables to cells ----------------------------------------------------------------


def _expected(table_row: dict[str, Answer | str], identity: str, ok: Answer) -> Answer:
    answer = table_row[identity]
    return ok if answer == OK else answer


# Who sees the organisation's own objects in a list they are allowed to read.
SEES_OWN = {"manager", "responder", "viewer", "read-token", "write-token", "two-orgs"}


def _shown(marker: str, identity: str, expected: Answer) -> str:
    """The marker an allowed read must show; none when the answer is anything else."""
    return marker if expected == 200 and identity in SEES_OWN else ""


def _object_targets(kind: str) -> list[str]:
    return [OWN, FOREIGN, SHARED] if kind in authz.SHARED_KINDS else [OWN, FOREIGN]


def _api_targets(op: Op) -> list[str]:
    return _object_targets(op.kind) if op.kind else [NONE]


def api_cells(world: World, identity: str) -> Iterator[Cell]:
    for key, op in API.items():
        method, template = key.split(" ", 1)
        for target in _api_targets(op):
            values: dict[str, Any] = {}
            shows = ""
            body = op.body
            if op.kind:
                obj = world.holdings(target).objects[op.kind]
                values = authz.lookups(obj)
                body = body(obj) if callable(body) else body
                if method == "GET" and target != FOREIGN:
                    shows = world.holdings(target).marker(op.kind)
            elif op.lists:
                shows = world.own.marker(op.lists)
            expected = _expected(API_ACCESS[(op.access, target)], identity, op.ok)
            yield Cell(
                key=key,
                target=target,
                method=method,
                path=authz.fill(template, values),
                expected=expected,
                body=body,
                as_json=True,
                shows=_shown(shows, identity, expected),
            )


def _page_targets(page: Page) -> list[str]:
    if not page.kind:
        return [NONE]
    if page.access in (NOT_ALLOWED, SUPERUSERS):
        return [OWN]
    return _object_targets(page.kind)


def page_cells(world: World, identity: str) -> Iterator[Cell]:
    for key, pages in PAGES.items():
        method, template = key.split(" ", 1)
        for page in pages if isinstance(pages, list) else [pages]:
            for target in _page_targets(page):
                values: dict[str, Any] = dict(page.args)
                shows = world.own.marker(page.lists) if page.lists else ""
                if page.kind:
                    obj = world.holdings(target).objects[page.kind]
                    values = {**authz.lookups(obj), **values}
                if values.get("token") == ONE_CLICK:
                    values["token"] = authz.one_click_token(world.own)
                    if method == "GET" and target != FOREIGN:
                        shows = world.holdings(target).marker(page.kind)
                ok = page.ok
                if ok == BACK:
                    ok = Redirect(obj.get_absolute_url())
                expected = _expected(PAGE_ACCESS[(page.access, target)], identity, ok)
                yield Cell(
                    key=key,
                    target=target,
                    method=method,
                    path=page.path or authz.fill(template, values),
                    expected=expected,
                    body=page.body,
                    shows=_shown(shows, identity, expected),
                )


def admin_cells(world: World, identity: str) -> Iterator[Cell]:
    for model in admin.site._registry:
        policy = ADMIN_MODELS[model._meta.label_lower]
        for (view, target), answers in ADMIN_ACCESS[policy].items():
            obj = None
            if view not in ("changelist", "add"):
                if target == NONE:
                    obj = world.site_row(model) or world.own.of(model)
                else:
                    obj = world.holdings(target).of(model)
                if obj is None and target == SHARED:
                    continue  # the model has no rows shared by every organisation
                assert obj is not None, f"no {model._meta.label} in the world: add one"
            method, body, ok = "GET", None, 200
            if view == "redirect":
                ok = Redirect(authz.admin_url(model, "change", obj))
            if view == "history":  # to the object's events in the audit trail
                ok = Redirect(authz.admin_url(AuditEvent, "changelist") + "?", prefix=True)
            if view == DELETED:
                view, method, body = "delete", "POST", {"post": "yes"}
                ok = Redirect(authz.admin_url(model, "changelist"))
            expected = _expected(answers, identity, ok)
            shows = ""
            if view == "change" and target in (OWN, SHARED):
                shows = _shown(world.holdings(target).marker_of(obj), identity, expected)
            yield Cell(
                key=f"{method} admin {model._meta.label_lower} {view}",
                target=target,
                method=method,
                path=authz.admin_url(model, view, obj),
                expected=expected,
                body=body,
                shows=shows,
            )


def view_on_site_cells(world: World, identity: str) -> Iterator[Cell]:
    for model in admin.site._registry:
        if not hasattr(model, "get_absolute_url"):
            continue
        content_type = ContentType.objects.get_for_model(model)
        for target, answers in VIEW_ON_SITE.items():
            obj = world.holdings(target).of(model)
            if obj is None:
                continue
            yield Cell(
                key=f"GET view on site {model._meta.label_lower}",
                target=target,
                method="GET",
                path=f"/admin/r/{content_type.pk}/{obj.pk}/",
                expected=_expected(answers, identity, Redirect(obj.get_absolute_url())),
            )
