"""Paging: notification channels, escalation policies, and the delivery ledger.

- `channels`: channel configurations validated per kind, masked for display;
- `payloads`: what each kind sends, as pure functions;
- `escalation`: who is told what and when, as a pure `decide()`;
- `transports`: one small sender per kind, with one contract;
- `engine`: the edges: the outbox consumer and beat's tick write Notification rows
  from `decide()`, the delivery worker claims them and records each answer.
"""
