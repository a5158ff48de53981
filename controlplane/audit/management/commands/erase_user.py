"""manage.py erase_user USERNAME [--yes]: erase a person's personal data (docs/audit.md)."""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.audit.erasure import ErasureRefused, erase

YES = {"y", "yes"}


class Command(BaseCommand):
    help = (
        "Erase a person's personal data: anonymise their user, delete their memberships, "
        "sessions and login records, and destroy the link from their pseudonym to them. "
        "The audit trail stays whole and verifiable, and no longer points to them."
    )
    # Tests (and scripts) may hand the confirmation in: call_command(..., stdin=...).
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The username of the person to erase.")
        parser.add_argument(
            "--yes", action="store_true", help="Erase without asking for confirmation."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        User = get_user_model()
        user = User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"There is no user with the username {username!r}.")
        if not options["yes"] and not self._confirmed(username, options.get("stdin") or sys.stdin):
            raise CommandError("Nothing erased.")
        try:
            receipt = erase(user)
        except ErasureRefused as refused:
            raise CommandError(f"Not erased: {refused}.") from None
        # The username typed is not repeated: terminals and CI logs keep what they print.
        self.stdout.write(
            f"Erased: the user is now {receipt.username}, and pseudonym {receipt.pseudonym} "
            f"no longer resolves to anyone. Removed {receipt.memberships} membership(s), "
            f"{receipt.responders} responder(s), {receipt.sessions} session(s), "
            f"{receipt.login_records} login record(s) and {receipt.admin_log_entries} admin "
            f"log entr{'y' if receipt.admin_log_entries == 1 else 'ies'}; renamed "
            f"{receipt.notifications} on-call notification(s). Audit events: "
            f"{', '.join(f'#{pk}' for pk in receipt.events)}."
        )

    def _confirmed(self, username: str, stdin: Any) -> bool:
        self.stdout.write(
            f"Erase the personal data of {username!r}? Their user is anonymised and "
            "cannot sign in again; this cannot be undone. Type 'yes' to go on: ",
            ending="",
        )
        self.stdout.flush()
        answer = stdin.readline()
        return answer.strip().lower() in YES
