"""Django signals the alert lifecycle sends; paging listens to them.

Each is sent after the transaction that changed the alert commits, with
`alert` (an Alert) and `actor` (a string such as "system:beat" or "user:42").
"""

from django.dispatch import Signal

alert_opened = Signal()
alert_acknowledged = Signal()
alert_resolved = Signal()
# A silence ended while the alert still fires: it becomes notifiable.
alert_unsilenced = Signal()
