"""Sample runbook text and files for the runbook tests."""

from __future__ import annotations

from pathlib import Path

SECTIONS = ("symptoms", "triage", "escalation", "mitigation", "verification")

BODY = """# Checkout errors

Intro paragraph.

## Symptoms

Customers see errors.

## Triage

1. Run `kubectl get pods`.

## Escalation

Page the payments lead after 15 minutes.

## Mitigation

Roll back the last release.

## Verification

The error ratio is back under 0.1%.
"""


def runbook_file(slug: str, body: str = BODY, **front) -> str:
    meta = {
        "slug": slug,
        "title": f'"{slug.replace("-", " ").capitalize()}"',
        "tags": "[api, availability]",
        "owner": "platform-sre",
        "summary": f'"What to do about {slug}."',
        "reviewed": "2026-11-27",
        **front,
    }
    lines = [f"{key}: {value}" for key, value in meta.items() if value is not None]
    return "---\n" + "\n".join(lines) + "\n---\n\n" + body


def write(directory: Path, slug: str, text: str | None = None, **front) -> Path:
    path = directory / f"{slug}.md"
    path.write_text(text if text is not None else runbook_file(slug, **front), encoding="utf-8")
    return path
