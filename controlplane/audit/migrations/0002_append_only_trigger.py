"""On PostgreSQL the database itself keeps the trail append-only, and its chain heads
moving forward only.

A trigger refuses every UPDATE of an audit event but its seal (the chain fields, set
once, the content untouched) and every DELETE outside the retention job, which sets
`controlplane.audit_retention` for its own transaction only (SET LOCAL). TRUNCATE is
left to the table's owner (and to the test suite's flush). SQLite has no such
triggers here: there the application refuses (models.AuditEventQuerySet).
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF current_setting('controlplane.audit_retention', true) = 'on' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit events cannot be deleted: only the retention job removes them'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.seq IS NULL AND NEW.seq IS NOT NULL
       AND (NEW.id, NEW.chain, NEW.organization_id, NEW.at, NEW.actor, NEW.action,
            NEW.object_type, NEW.object_id, NEW.object_label, NEW.diff, NEW.request_id,
            NEW.trace_id, NEW.mac)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.chain, OLD.organization_id, OLD.at, OLD.actor, OLD.action,
            OLD.object_type, OLD.object_id, OLD.object_label, OLD.diff, OLD.request_id,
            OLD.trace_id, OLD.mac) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events cannot be changed: the trail is append-only'
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();

-- The head is where audit_verify learns how far a chain was sealed: it only moves on.
-- Without this, whoever may delete the newest events could move the head back to
-- match, and the removal would not show.
CREATE OR REPLACE FUNCTION audit_chain_head_forward_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'an audit chain head cannot be deleted'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.chain <> OLD.chain OR NEW.seq < OLD.seq
       OR (NEW.seq = OLD.seq AND NEW.hash IS DISTINCT FROM OLD.hash) THEN
        RAISE EXCEPTION 'an audit chain head only moves forward'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_chain_head_forward_only
    BEFORE UPDATE OR DELETE ON audit_chainhead
    FOR EACH ROW EXECUTE FUNCTION audit_chain_head_forward_only();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_chain_head_forward_only ON audit_chainhead;
DROP FUNCTION IF EXISTS audit_chain_head_forward_only();
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_append_only();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
