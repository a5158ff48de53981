"""On-call schedules read from ICS calendars: who is on call now, across time zones
and DST, and a broken feed never empties a schedule (docs/oncall.md)."""
