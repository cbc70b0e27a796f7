"""On PostgreSQL, the database itself keeps the ledger honest:

- any UPDATE or DELETE of a journal entry or line is refused (append-only: post a reversal);
- when a transaction commits, every journal entry it wrote must have lines, and its lines'
  debits must equal their credits (deferred constraint triggers).

On SQLite the service layer (ledger.services, ledger.models.AppendOnlyModel) enforces the same.
"""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are append-only: % on % refused; post a reversal instead', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER journalentry_append_only BEFORE UPDATE OR DELETE ON ledger_journalentry
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER journalline_append_only BEFORE UPDATE OR DELETE ON ledger_journalline
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

CREATE OR REPLACE FUNCTION ledger_assert_entry_balanced(entry bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    line_count integer;
    difference numeric;
BEGIN
    SELECT count(*), COALESCE(sum(debit), 0) - COALESCE(sum(credit), 0)
      INTO line_count, difference
      FROM ledger_journalline WHERE entry_id = entry;
    IF line_count < 2 THEN
        RAISE EXCEPTION 'journal entry % has % line(s); an entry needs a debit and a credit', entry, line_count
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF difference <> 0 THEN
        RAISE EXCEPTION 'journal entry % does not balance: debits exceed credits by %', entry, difference
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION ledger_check_new_entry() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_assert_entry_balanced(NEW.id);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION ledger_check_new_line() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_assert_entry_balanced(NEW.entry_id);
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER journalentry_has_balanced_lines AFTER INSERT ON ledger_journalentry
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_new_entry();
CREATE CONSTRAINT TRIGGER journalline_entry_balanced AFTER INSERT ON ledger_journalline
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_new_line();
"""

DROP = r"""
DROP TRIGGER IF EXISTS journalline_entry_balanced ON ledger_journalline;
DROP TRIGGER IF EXISTS journalentry_has_balanced_lines ON ledger_journalentry;
DROP FUNCTION IF EXISTS ledger_check_new_line();
DROP FUNCTION IF EXISTS ledger_check_new_entry();
DROP FUNCTION IF EXISTS ledger_assert_entry_balanced(bigint);
DROP TRIGGER IF EXISTS journalline_append_only ON ledger_journalline;
DROP TRIGGER IF EXISTS journalentry_append_only ON ledger_journalentry;
DROP FUNCTION IF EXISTS ledger_refuse_change();
"""


def _run(schema_editor, sql):
    if schema_editor.connection.vendor == "postgresql":
        # Through a plain cursor without parameters: the SQL's own % signs are not placeholders.
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(sql)


def create_triggers(apps, schema_editor):
    _run(schema_editor, CREATE)


def drop_triggers(apps, schema_editor):
    _run(schema_editor, DROP)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
