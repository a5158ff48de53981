"""manage.py seed_demo_paging: the demo organisation's paging, delivering into the
sinks the demo starts.

- a webhook channel to the webhook sink (manage.py webhook_sink) and an email channel,
  which the demo's console email backend prints;
- a policy notifying both at once and again on resolve, the organisation's default
  unless it has another;
- the built-in rules api.5xx and api.latency evaluated every 10 s and firing after
  15 s, so the drill (manage.py drill) fires them within a minute: their built-in 1 m
  interval and 2 m / 5 m `for` would take several.

Run again, it changes nothing but the webhook channel's URL (the sink may have moved);
a policy or rule timing someone has edited stays as they left it.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from controlplane.alerting.builtin import BUILTIN_RULES
from controlplane.alerting.models import AlertRule
from controlplane.catalog.models import Organization
from controlplane.paging import channels
from controlplane.paging.channels import ChannelConfigError, ChannelKind
from controlplane.paging.models import EscalationPolicy, EscalationStep, NotificationChannel

POLICY = "demo-sinks"
WEBHOOK_CHANNEL = "demo-webhook-sink"
EMAIL_CHANNEL = "demo-email"
EMAIL_TO = "oncall@example.com"
SINK_URL = "http://127.0.0.1:9099/"

# The built-in rules' timings in the demo: (evaluation interval, for).
DEMO_TIMINGS = {
    "api.5xx": (timedelta(seconds=10), timedelta(seconds=15)),
    "api.latency": (timedelta(seconds=10), timedelta(seconds=15)),
}
# What an unedited built-in rule has: the model's default interval and the spec's `for`.
BUILTIN_INTERVAL = AlertRule._meta.get_field("interval").default
BUILTIN_FOR = {spec["key"]: spec.get("for_duration", timedelta(0)) for spec in BUILTIN_RULES}


class Command(BaseCommand):
    help = (
        "Give the demo organisation a default escalation policy whose channels deliver "
        "into the demo's sinks, and built-in rules quick enough to watch fire."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", default="demo", help="organisation slug (demo)")
        parser.add_argument(
            "--sink-url", default=SINK_URL, help=f"the webhook sink's URL ({SINK_URL})"
        )

    @transaction.atomic
    def handle(self, *args, org: str, sink_url: str, **options) -> None:
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organisation with the slug {org!r}: run seed_demo first.")
        webhook = _channel(organization, WEBHOOK_CHANNEL, ChannelKind.WEBHOOK, {"url": sink_url})
        email = _channel(organization, EMAIL_CHANNEL, ChannelKind.EMAIL, {"to": [EMAIL_TO]})
        policy, created = _policy(organization, [webhook, email])
        default = " (the organisation's default)" if policy.is_default else ""
        self.stdout.write(
            f"Paging: policy {policy.slug!r}{default} "
            + (
                f"notifies {WEBHOOK_CHANNEL} (-> {sink_url}) and {EMAIL_CHANNEL} (printed by "
                "the worker) when an alert opens, and again when it resolves."
                if created
                else "kept as it is."
            )
        )
        if not policy.is_default:
            self.stdout.write(
                "  Another policy is the default: rules naming no policy use it, not this one."
            )
        tuned = _tune_rules(organization)
        if tuned:
            self.stdout.write(
                f"Rules {', '.join(tuned)}: evaluated every 10 s, firing after 15 s of "
                "breach (the demo's timings)."
            )


def _channel(
    organization: Organization, name: str, kind: ChannelKind, raw: dict
) -> NotificationChannel:
    """The demo's channel `name`, made or brought back to `raw`, checked as the admin
    checks one (a loopback URL needs ALLOWED_PRIVATE_NETWORKS)."""
    try:
        config = channels.to_json(channels.parse_config(kind, raw))
    except ChannelConfigError as error:
        raise CommandError(f"The channel {name}: {' '.join(error.messages())}") from None
    channel = NotificationChannel.objects.filter(organization=organization, name=name).first()
    if channel is None:
        channel = NotificationChannel(organization=organization, name=name)
    if channel.pk is not None and (channel.kind, channel.config) == (kind, config):
        return channel
    channel.kind, channel.config = kind, config
    try:
        channel.full_clean()
    except ValidationError as error:
        raise CommandError(f"The channel {name}: {' '.join(error.messages)}") from None
    channel.save()
    return channel


def _policy(
    organization: Organization, step_channels: list[NotificationChannel]
) -> tuple[EscalationPolicy, bool]:
    policy = EscalationPolicy.objects.filter(organization=organization, slug=POLICY).first()
    if policy is not None:
        return policy, False
    has_default = EscalationPolicy.objects.filter(
        organization=organization, is_default=True
    ).exists()
    policy = EscalationPolicy.objects.create(
        organization=organization,
        slug=POLICY,
        name="Demo: the webhook sink and the console email",
        is_default=not has_default,
        notify_on_resolve=True,
    )
    step = EscalationStep.objects.create(policy=policy, position=0, delay=timedelta(0))
    step.channels.set(step_channels)
    try:
        policy.check_snapshot()
    except ValidationError as error:  # a bug of ours: say it rather than leave it half-made
        raise CommandError(f"The demo policy: {' '.join(error.messages)}") from None
    return policy, True


def _tune_rules(organization: Organization) -> list[str]:
    """Give the built-in rules still at their built-in timings the demo's; returns
    the keys of the rules at the demo's timings."""
    tuned = []
    for rule in AlertRule.objects.filter(
        organization=organization, builtin=True, key__in=DEMO_TIMINGS
    ).order_by("key"):
        interval, for_duration = DEMO_TIMINGS[rule.key]
        if (rule.interval, rule.for_duration) == (BUILTIN_INTERVAL, BUILTIN_FOR[rule.key]):
            rule.interval, rule.for_duration = interval, for_duration
            # save() and not update(): the rule's receiver brings its next slot forward.
            rule.save(update_fields=["interval", "for_duration", "updated_at"])
        if (rule.interval, rule.for_duration) == (interval, for_duration):
            tuned.append(rule.key)
    return tuned
