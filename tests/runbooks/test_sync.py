"""sync_runbooks: idempotent, all-or-nothing, and careful with admin edits."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from runbooks.files import parse
from runbooks.models import Runbook, RunbookRevision, Via
from runbooks.sync import Outcome, decide
from tests.runbooks.samples import SECTIONS, write

pytestmark = pytest.mark.django_db

SEEDED = {
    "api-5xx", "api-latency", "calendar-queue", "audit-job-failure", "etl-job-failure",
    "source-down", "slo-burn-rate", "slo-objectives",
}  # fmt: skip


def sync(*args) -> str:
    out = StringIO()
    call_command("sync_runbooks", *args, stdout=out, stderr=out)
    return out.getvalue()


def state() -> dict[str, tuple]:
    """What a sync may write: every runbook's content and timestamps, and the history."""
    return {
        "runbooks": sorted(
            Runbook.objects.values_list(
                "slug", "organization_id", "title", "body", "updated_at", "synced_digest"
            )
        ),
        "revisions": RunbookRevision.objects.count(),
    }


def admin_edit(runbook: Runbook, body: str) -> None:
    editor = get_user_model().objects.create_user("editor")
    runbook.body = body
    runbook.save_change(changed_by=editor, via=Via.ADMIN)


@pytest.mark.parametrize(
    ("file", "current", "synced", "force", "outcome"),
    [
        ("f1", None, "", False, Outcome.CREATED),
        ("f1", "f1", "f1", False, Outcome.UNCHANGED),
        ("f1", "f1", "f0", False, Outcome.UNCHANGED),
        ("f1", "edit", "f1", False, Outcome.KEPT_EDIT),
        ("f2", "f1", "f1", False, Outcome.UPDATED),
        ("f2", "edit", "f1", False, Outcome.CONFLICT),
        ("f2", "edit", "f1", True, Outcome.FORCED),
        ("f1", "made-in-admin", "", False, Outcome.CONFLICT),
    ],
)
def test_decide(file, current, synced, force, outcome):
    assert decide(file, current, synced, force) is outcome


def test_the_seeded_pages_load_with_their_five_sections():
    output = sync()

    assert "8 created, 0 updated, 0 unchanged, 0 conflict(s)" in output
    runbooks = Runbook.objects.filter(organization__isnull=True)
    assert set(runbooks.values_list("slug", flat=True)) == SEEDED
    for runbook in runbooks:
        ids = [section_id for section_id, _ in runbook.sections]
        assert set(SECTIONS) <= set(ids), runbook.slug
        assert runbook.source_path == f"runbooks/pages/{runbook.slug}.md"
        assert runbook.revisions.get().via == Via.SYNC


def test_a_second_run_writes_nothing(pages_dir):
    write(pages_dir, "api-5xx")
    write(pages_dir, "source-down")
    sync("--path", str(pages_dir))
    before = state()

    output = sync("--path", str(pages_dir))

    assert "0 created, 0 updated, 2 unchanged, 0 conflict(s)" in output
    assert state() == before


def test_a_changed_file_updates_the_runbook_and_records_it(pages_dir):
    write(pages_dir, "api-5xx")
    sync("--path", str(pages_dir))
    first = Runbook.objects.get()

    write(pages_dir, "api-5xx", body="## Symptoms\n\nNew text.\n", owner="payments")
    output = sync("--path", str(pages_dir))

    runbook = Runbook.objects.get()
    assert "0 created, 1 updated, 0 unchanged" in output
    assert (runbook.body, runbook.owner) == ("## Symptoms\n\nNew text.\n", "payments")
    assert "New text." in runbook.body_html
    assert runbook.updated_at > first.updated_at
    assert list(runbook.revisions.values_list("via", "owner")) == [
        ("sync", "payments"),
        ("sync", "platform-sre"),
    ]


def test_an_admin_edit_survives_a_sync_of_the_unchanged_file(pages_dir):
    write(pages_dir, "api-5xx")
    sync("--path", str(pages_dir))
    admin_edit(Runbook.objects.get(), "Edited in the admin.\n")
    before = state()

    output = sync("--path", str(pages_dir))

    assert "kept: api-5xx" in output
    assert state() == before
    assert Runbook.objects.get().body == "Edited in the admin.\n"


def test_admin_edit_and_changed_file_is_a_conflict_and_the_admin_version_stays(pages_dir):
    write(pages_dir, "api-5xx")
    sync("--path", str(pages_dir))
    admin_edit(Runbook.objects.get(), "Edited in the admin.\n")
    write(pages_dir, "api-5xx", body="Changed in the file.\n")
    before = state()

    output = sync("--path", str(pages_dir))

    assert "conflict: api-5xx was edited in the admin" in output
    assert "--force" in output
    assert "0 created, 0 updated, 0 unchanged, 1 conflict(s)" in output
    assert state() == before
    # Still a conflict the next time: nothing was marked as synced.
    assert "1 conflict(s)" in sync("--path", str(pages_dir))


def test_force_lets_the_file_win_and_history_keeps_the_admin_edit(pages_dir):
    write(pages_dir, "api-5xx")
    sync("--path", str(pages_dir))
    admin_edit(Runbook.objects.get(), "Edited in the admin.\n")
    write(pages_dir, "api-5xx", body="Changed in the file.\n")

    output = sync("--path", str(pages_dir), "--force")

    runbook = Runbook.objects.get()
    assert "forced: api-5xx" in output
    assert "0 created, 1 updated" in output
    assert runbook.body == "Changed in the file.\n"
    assert runbook.updated_by is None
    assert list(runbook.revisions.values_list("via", "body")) == [
        ("sync", "Changed in the file.\n"),
        ("admin", "Edited in the admin.\n"),
        ("sync", runbook.revisions.last().body),
    ]
    assert "0 updated, 1 unchanged" in sync("--path", str(pages_dir))


def test_a_runbook_made_in_the_admin_with_the_same_text_is_adopted(pages_dir, make_runbook):
    write(pages_dir, "api-5xx")
    parsed = parse((pages_dir / "api-5xx.md").read_text())
    meta = parsed.metadata
    make_runbook(
        "api-5xx",
        title=meta.title,
        summary=meta.summary,
        body=parsed.body,
        owner=meta.owner,
        tags=list(meta.tags),
        reviewed_at=meta.reviewed_at,
    )

    output = sync("--path", str(pages_dir))

    assert "0 created, 0 updated, 1 unchanged" in output
    assert Runbook.objects.get().synced_digest == parsed.digest


def test_a_runbook_made_in_the_admin_with_other_text_is_a_conflict(pages_dir, make_runbook):
    write(pages_dir, "api-5xx")
    make_runbook("api-5xx", body="Written in the admin.\n")

    output = sync("--path", str(pages_dir))

    assert "conflict: api-5xx" in output
    assert Runbook.objects.get().body == "Written in the admin.\n"


def test_a_malformed_file_is_named_and_nothing_is_written(pages_dir):
    write(pages_dir, "api-5xx")
    sync("--path", str(pages_dir))
    write(pages_dir, "api-5xx", body="A good change.\n")
    write(pages_dir, "new-page")
    write(pages_dir, "broken", "---\nslug: broken\ntitle: [oops\n---\nbody\n")
    before = state()
    err = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("sync_runbooks", "--path", str(pages_dir), stdout=StringIO(), stderr=err)

    assert "broken.md: line 3: front matter is not valid YAML" in err.getvalue()
    assert "api-5xx" not in err.getvalue()
    assert "1 runbook file(s) could not be loaded; nothing was changed" in str(raised.value)
    assert state() == before


def test_every_malformed_file_is_reported(pages_dir):
    write(pages_dir, "one", "no front matter\n")
    write(pages_dir, "two", tags="api")
    write(pages_dir, "three", "---\nslug: four\ntitle: x\ntags: []\nowner: o\nsummary: s\n---\nb\n")
    err = StringIO()

    with pytest.raises(CommandError):
        call_command("sync_runbooks", "--path", str(pages_dir), stdout=StringIO(), stderr=err)

    lines = err.getvalue().splitlines()
    assert [line.split(": ", 1)[0].rsplit("/", 1)[-1] for line in lines] == [
        "one.md",
        "three.md",
        "two.md",
    ]
    assert "slug 'four' must match the file name 'three'" in err.getvalue()
    assert not Runbook.objects.exists()


def test_a_file_that_is_not_utf8_is_named(pages_dir):
    (pages_dir / "latin.md").write_bytes("---\ntitle: caf\xe9\n".encode("latin-1"))
    err = StringIO()

    with pytest.raises(CommandError):
        call_command("sync_runbooks", "--path", str(pages_dir), stdout=StringIO(), stderr=err)

    assert "latin.md: not UTF-8 text" in err.getvalue()


def test_org_option_loads_into_that_organisation_only(pages_dir, org, make_runbook):
    shared = make_runbook("api-5xx", body="Shared text.\n")
    write(pages_dir, "api-5xx", body="Acme's own text.\n")

    output = sync("--path", str(pages_dir), "--org", org.slug)

    assert "runbooks (organisation acme): 1 created" in output
    own = Runbook.objects.get(organization=org)
    assert own.body == "Acme's own text.\n"
    shared.refresh_from_db()
    assert shared.body == "Shared text.\n"


def test_unknown_org_and_missing_directory_are_errors(pages_dir, tmp_path):
    with pytest.raises(CommandError, match="No organisation with the slug 'nope'"):
        sync("--path", str(pages_dir), "--org", "nope")
    with pytest.raises(CommandError, match="is not a directory"):
        sync("--path", str(tmp_path / "missing"))


def test_a_runbook_whose_file_is_gone_is_reported_and_left_alone(pages_dir):
    path: Path = write(pages_dir, "api-5xx")
    sync("--path", str(pages_dir))
    path.unlink()

    output = sync("--path", str(pages_dir))

    assert "no file: api-5xx" in output
    assert Runbook.objects.filter(slug="api-5xx").exists()
