"""Erasing a person: their personal data goes, the audit trail stays whole and names nobody.

The trail never held a name, an email or an address: people are in it by pseudonym
(pseudonyms.py), personal fields are masked in diffs (diff.py), and labels of rows that
belong to a person (a membership, a responder) leave their username out. So erasure
changes no event, and the chain stays verifiable. What it destroys is the link: the
`Pseudonym` row that says which user a pseudonym is. With it gone, and the user row
anonymised, every event naming that pseudonym points to nobody.

In one transaction, `erase()`:

1. records `user.erased` in chain 0 and in the chain of each organisation the person
   belonged to, labelled with the pseudonym (never the name);
2. deletes their responders and memberships through the ORM, so each deletion is
   recorded like any other, the person named by pseudonym, and renames the on-call
   notifications that named them ("<schedule>: <username>");
3. anonymises the user row: username "erased-<random>", no email, no name, no usable
   password, inactive, no staff or superuser flag, no groups;
4. deletes their sessions, django-axes' login records for their username or email
   (which hold the address they came from), and the admin's log entries by them or
   about their user, memberships and responders (whose labels are usernames);
5. deletes the `Pseudonym` row.

Kept: the anonymised user row, so what pointed to it (an alert they acknowledged, a
token they made) still points somewhere; it shows as "erased-…".
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import SESSION_KEY, get_user_model
from django.db import models, transaction
from django.http import HttpRequest
from django.template.response import TemplateResponse

from controlplane.audit import diff as diffs
from controlplane.audit import pseudonyms
from controlplane.audit.diff import AuditSpec
from controlplane.audit.models import Pseudonym
from controlplane.audit.recorder import object_type_of, record
from controlplane.catalog import actors
from controlplane.catalog.actors import Actor
from controlplane.catalog.models import Membership
from controlplane.oncall.models import Responder
from controlplane.paging.models import Notification
from observability.logging import redact

ACTION = "user.erased"
ERASED_USERNAME_PREFIX = "erased-"
CONFIRMATION_TEMPLATE = "admin/auth/user/erase_personal_data.html"

# How the user row's change shows in the `user.erased` event of chain 0: what named
# the person is said to have changed, never shown; the flags as they were and are.
USER_SPEC = AuditSpec(
    personal=frozenset({"username", "email", "first_name", "last_name", "last_login"}),
    secret=frozenset({"password"}),
    skip=frozenset({"id", "date_joined"}),
)


class ErasureRefused(ValueError):
    """An erasure that would do harm or nothing: the reason says which."""


@dataclass(frozen=True)
class Found:
    """What one person left behind, counted before anything goes."""

    memberships: Mapping[int, list[int]]  # organisation id -> membership ids
    responders: Mapping[int, list[int]]  # organisation id -> responder ids
    notifications: Mapping[int, int]  # organisation id -> on-call notifications naming them
    sessions: int
    login_records: int
    admin_log_entries: int

    @property
    def organizations(self) -> list[int]:
        return sorted(set(self.memberships) | set(self.responders) | set(self.notifications))


@dataclass(frozen=True)
class ErasureReceipt:
    """What `erase()` did. `pseudonym` resolves to nobody any more; `username` is the
    row's new, meaningless one."""

    pseudonym: str
    username: str
    organizations: tuple[int, ...]
    memberships: int
    responders: int
    notifications: int
    sessions: int
    login_records: int
    admin_log_entries: int
    events: tuple[int, ...]


# Pure ----------------------------------------------------------------------------------


def is_erased(user: Any) -> bool:
    """Whether the user row is one `erase()` left behind."""
    return (
        not user.is_active
        and user.get_username().startswith(ERASED_USERNAME_PREFIX)
        and not user.has_usable_password()
    )


def refusal(*, erased: bool, active_superuser: bool, other_active_superusers: int) -> str | None:
    """Why an erasure must not happen, or None.

    The last active superuser is refused: erasure takes the flag away, and nobody would
    be left to add people, lift a login lock-out or erase the next person from the admin.
    """
    if erased:
        return "this user's personal data is already erased"
    if active_superuser and other_active_superusers == 0:
        return (
            "this is the last active superuser: make another one first "
            "(manage.py createsuperuser), then erase this one"
        )
    return None


def renamed_notification(channel_name: str) -> str:
    """An on-call notification's channel name without the person: "<schedule>: erased"."""
    schedule, separator, _ = channel_name.partition(": ")
    return f"{schedule}{separator}{pseudonyms.ERASED}" if separator else pseudonyms.ERASED


def scrubbed(text: str, identifiers: Iterable[str]) -> str:
    """`text` with the person's identifiers and any email address taken out: a
    notification's last error may say "<username> has no email address" or quote the
    receiving server ("550 <address>: no such mailbox")."""
    for identifier in sorted(identifiers, key=len, reverse=True):
        text = re.sub(re.escape(identifier), pseudonyms.ERASED, text, flags=re.IGNORECASE)
    return redact(text)


def _counted(name: str, count: int) -> dict[str, dict[str, int]]:
    return {name: {"from": count, "to": 0}} if count else {}


def organization_diff(found: Found, organization_id: int) -> dict[str, Any]:
    """The diff of `user.erased` in one organisation's chain: what went there."""
    return {
        **diffs.membership_change(
            "memberships", removed=found.memberships.get(organization_id, [])
        ),
        **diffs.membership_change("responders", removed=found.responders.get(organization_id, [])),
        **_counted("notifications_renamed", found.notifications.get(organization_id, 0)),
    }


def system_diff(before: Mapping[str, Any], after: Mapping[str, Any], found: Found) -> dict:
    """The diff of `user.erased` in chain 0: the row's change (personal fields masked)
    and everything removed, counted."""
    return {
        **diffs.changes(before, after, USER_SPEC),
        **diffs.membership_change(
            "memberships", removed=[pk for pks in found.memberships.values() for pk in pks]
        ),
        **diffs.membership_change(
            "responders", removed=[pk for pks in found.responders.values() for pk in pks]
        ),
        **_counted("notifications_renamed", sum(found.notifications.values())),
        **_counted("sessions", found.sessions),
        **_counted("login_records", found.login_records),
        **_counted("admin_log_entries", found.admin_log_entries),
    }


# The erasure ---------------------------------------------------------------------------


def erase(user: Any, actor: Actor | None = None) -> ErasureReceipt:
    """Erase the person's personal data (see the module's docstring); refused with
    `ErasureRefused` for the last active superuser or a user already erased."""
    User = get_user_model()
    actor = actor or actors.current()
    with transaction.atomic(), actors.acting(actor):
        # Every active superuser locked: two erasures at once cannot leave none.
        superusers = list(
            User._base_manager.select_for_update()
            .filter(is_superuser=True, is_active=True)
            .values_list("pk", flat=True)
        )
        user = User._base_manager.select_for_update().get(pk=user.pk)
        reason = refusal(
            erased=is_erased(user),
            active_superuser=user.is_superuser and user.is_active,
            other_active_superusers=len([pk for pk in superusers if pk != user.pk]),
        )
        if reason:
            raise ErasureRefused(reason)

        pseudonym = pseudonyms.of_user_id(user.pk)
        if pseudonym is None:  # cannot happen for a row we hold locked; never name them
            raise ErasureRefused("this user has no pseudonym and cannot get one")
        identifiers = {user.get_username(), getattr(user, user.get_email_field_name(), "")}
        identifiers.discard("")
        names = {getattr(user, name, "") for name in ("first_name", "last_name")} - {""}
        memberships = list(
            Membership.objects.filter(user=user).values_list("organization_id", "pk")
        )
        responders = list(Responder.objects.filter(user=user).values_list("organization_id", "pk"))
        notifications = list(
            Notification.objects.filter(responder__user=user).only(
                "pk", "organization_id", "channel_name", "last_error"
            )
        ) + _left_by_a_removed_responder(user.get_username())
        session_keys = _session_keys(user.pk)
        login_records = _login_records(identifiers)
        log_entries = _admin_log_entries(
            user, [pk for _, pk in memberships], [pk for _, pk in responders]
        )
        found = Found(
            memberships=_grouped(memberships),
            responders=_grouped(responders),
            notifications=_counts(row.organization_id for row in notifications),
            sessions=len(session_keys),
            login_records=sum(queryset.count() for queryset in login_records),
            admin_log_entries=log_entries.count(),
        )

        before = _row(user)
        _anonymise(user)
        after = _row(user)

        events = [
            record(
                ACTION,
                organization_id=None,
                object_type=object_type_of(User),
                object_id=user.pk,
                label=pseudonym,
                diff=system_diff(before, after, found),
            )
        ]
        for organization_id in found.organizations:
            events.append(
                record(
                    ACTION,
                    organization_id=organization_id,
                    object_type=object_type_of(User),
                    object_id=user.pk,
                    label=pseudonym,
                    diff=organization_diff(found, organization_id),
                )
            )

        for row in notifications:
            row.channel_name = renamed_notification(row.channel_name)
            row.last_error = scrubbed(row.last_error, identifiers | names)
        Notification.objects.bulk_update(notifications, ["channel_name", "last_error"])
        # Through the ORM, one by one: each deletion is recorded by the audited models,
        # the person named by pseudonym (the link still exists until the end).
        for responder in Responder.objects.filter(pk__in=[pk for _, pk in responders]):
            responder.delete()
        for membership in Membership.objects.filter(pk__in=[pk for _, pk in memberships]):
            membership.delete()

        _delete_sessions(session_keys)
        for queryset in login_records:
            queryset.delete()
        log_entries.delete()
        Pseudonym.objects.filter(user_id=user.pk).delete()
        # This process forgets it now, and again once committed (a request may have
        # looked it up meanwhile); other processes hold an entry no request reaches.
        pseudonyms.forget(user.pk)
        transaction.on_commit(lambda: pseudonyms.forget(user.pk))

    return ErasureReceipt(
        pseudonym=pseudonym,
        username=user.get_username(),
        organizations=tuple(found.organizations),
        memberships=len(memberships),
        responders=len(responders),
        notifications=len(notifications),
        sessions=found.sessions,
        login_records=found.login_records,
        admin_log_entries=found.admin_log_entries,
        events=tuple(event.pk for event in events),
    )


def _left_by_a_removed_responder(username: str) -> list[Any]:
    """On-call notifications named after the person (paging/responders.py: "<schedule>:
    <username>", cut at 64 characters) whose responder row was removed before: the
    reference is gone, the name is not."""
    candidates = Notification.objects.filter(
        responder__isnull=True,
        channel__isnull=True,
        schedule__isnull=False,
        channel_name__contains=f": {username[:20]}",
    ).select_related("schedule")
    return [
        row
        for row in candidates.only(
            "pk", "organization_id", "channel_name", "last_error", "schedule__slug"
        )
        if row.channel_name == f"{row.schedule.slug}: {username}"[:64]
    ]


def _grouped(pairs: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for organization_id, pk in pairs:
        grouped.setdefault(organization_id, []).append(pk)
    return grouped


def _counts(organization_ids: Iterable[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for organization_id in organization_ids:
        counts[organization_id] = counts.get(organization_id, 0) + 1
    return counts


def _row(user: Any) -> dict[str, Any]:
    return {field.attname: getattr(user, field.attname) for field in user._meta.concrete_fields}


def _anonymise(user: Any) -> None:
    setattr(user, user.USERNAME_FIELD, ERASED_USERNAME_PREFIX + secrets.token_hex(8))
    setattr(user, user.get_email_field_name(), "")
    for name in ("first_name", "last_name"):
        if hasattr(user, name):
            setattr(user, name, "")
    user.set_unusable_password()
    user.last_login = None
    user.is_active = False
    for flag in ("is_staff", "is_superuser"):
        if hasattr(user, flag):
            setattr(user, flag, False)
    user.save()
    for relation in ("groups", "user_permissions"):
        if hasattr(user, relation):
            getattr(user, relation).clear()


def _session_store() -> Any:
    return import_module(settings.SESSION_ENGINE).SessionStore


def _session_keys(user_pk: Any) -> list[str]:
    """Keys of the sessions signed in as the user, with a database session engine.

    Other engines (signed cookies, a cache) keep nothing here to delete; their sessions
    die anyway: Django signs no one in as an inactive user.
    """
    store = _session_store()
    if not hasattr(store, "get_model_class"):
        return []
    model = store.get_model_class()
    return [
        session.session_key
        for session in model.objects.iterator()
        if str(session.get_decoded().get(SESSION_KEY)) == str(user_pk)
    ]


def _delete_sessions(keys: list[str]) -> None:
    store = _session_store()
    for key in keys:
        store(session_key=key).delete()


def _login_records(identifiers: set[str]) -> list[models.QuerySet]:
    """django-axes' rows for the person: username and address of each login attempt.

    Matched on what they would type in the username field: their username or email.
    """
    if not identifiers or not apps.is_installed("axes"):
        return []
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    typed = models.Q()
    for identifier in identifiers:
        typed |= models.Q(username__iexact=identifier)
    return [model.objects.filter(typed) for model in (AccessAttempt, AccessFailureLog, AccessLog)]


def _admin_log_entries(
    user: Any, membership_ids: list[int], responder_ids: list[int]
) -> models.QuerySet:
    """The admin's history by the person, and about their user, memberships and
    responders: each entry's label (`object_repr`) is the object's name, here theirs."""
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    def about(model: type[models.Model], ids: list[Any]) -> models.Q:
        return models.Q(
            content_type=ContentType.objects.get_for_model(model),
            object_id__in=[str(pk) for pk in ids],
        )

    return LogEntry.objects.filter(
        models.Q(user=user)
        | about(type(user), [user.pk])
        | about(Membership, membership_ids)
        | about(Responder, responder_ids)
    )


# The admin's action ---------------------------------------------------------------------


@admin.action(description="Erase personal data", permissions=["erase"])
def erase_personal_data(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: models.QuerySet
) -> TemplateResponse | None:
    """Superusers only (the user admin's `has_erase_permission`): a confirmation page
    naming who will be erased, then one erasure each, each in its own transaction."""
    if not request.user.is_superuser:
        modeladmin.message_user(request, "Only superusers may erase people.", messages.ERROR)
        return None
    people = list(queryset.order_by("pk"))
    if request.POST.get("post") != "yes":
        return TemplateResponse(
            request,
            CONFIRMATION_TEMPLATE,
            {
                **modeladmin.admin_site.each_context(request),
                "title": "Erase personal data",
                "people": people,
                "opts": modeladmin.model._meta,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "action": "erase_personal_data",
            },
        )
    for person in people:
        if person.pk == request.user.pk:
            # Their own session would go mid-request; another superuser, or the
            # command line, erases them.
            modeladmin.message_user(
                request,
                "You cannot erase yourself here: ask another superuser, or use "
                "manage.py erase_user.",
                messages.ERROR,
            )
            continue
        try:
            receipt = erase(person, Actor.user(request.user))
        except ErasureRefused as refused:
            # Named by id: the page must not repeat a name it is asked to forget.
            modeladmin.message_user(request, f"User #{person.pk}: {refused}.", messages.ERROR)
            continue
        modeladmin.message_user(
            request,
            f"User #{person.pk} erased: now {receipt.username}; pseudonym "
            f"{receipt.pseudonym} no longer resolves.",
            messages.SUCCESS,
        )
    return None
