"""Paging: notification channels, escalation policies, and the delivery ledger.

So far only the pure foundation: channel configurations validated per kind
(`channels`) and the payload each kind sends (`payloads`), both free of the
database and of settings so the models, the admin, the API and the transports
can share them.
"""
