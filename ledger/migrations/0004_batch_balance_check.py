"""The database's balance check, once per transaction instead of once per row.

Migration 0002 checked an entry when its transaction committed, once for the entry and once
more for each of its lines, each time summing all the entry's lines: four sums for an invoice's
entry of three lines, two thousand function calls for a batch of 500 invoices. The rule is the
same now, and still the database's: every journal entry a transaction writes (or adds a line to)
must, when the transaction commits, have at least two lines and debits equal to credits.

How it runs: after each INSERT statement on entries or lines, a statement-level trigger notes the
entries the statement touched (from its transition table) in `ledger_entry_to_check` under the
transaction's id, and puts one row for the transaction in `ledger_balance_pending` unless it is
there already. That row's deferred constraint trigger fires once, at commit (or at SET
CONSTRAINTS … IMMEDIATE): it takes the transaction's notes out and checks every entry they name
in one query, refusing the commit with the first entry that fails. A savepoint rolled back takes
its notes and its pending row with it; a later insert in the same transaction puts the pending
row back. Both tables are empty outside a transaction that is writing the ledger.
"""

from django.db import migrations

CREATE = r"""
CREATE TABLE ledger_entry_to_check (transaction_id bigint NOT NULL, entry_id bigint NOT NULL);
CREATE INDEX ledger_entry_to_check_transaction ON ledger_entry_to_check (transaction_id);
CREATE TABLE ledger_balance_pending (transaction_id bigint PRIMARY KEY);

CREATE OR REPLACE FUNCTION ledger_check_noted_entries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    failing record;
BEGIN
    DELETE FROM ledger_balance_pending WHERE transaction_id = NEW.transaction_id;
    WITH noted AS (
        DELETE FROM ledger_entry_to_check WHERE transaction_id = NEW.transaction_id RETURNING entry_id
    )
    SELECT e.id AS entry, count(l.id) AS line_count,
           COALESCE(sum(l.debit), 0) - COALESCE(sum(l.credit), 0) AS difference
      INTO failing
      FROM (SELECT DISTINCT entry_id AS id FROM noted) AS e
      LEFT JOIN ledger_journalline AS l ON l.entry_id = e.id
     GROUP BY e.id
    HAVING count(l.id) < 2 OR COALESCE(sum(l.debit), 0) <> COALESCE(sum(l.credit), 0)
     ORDER BY e.id
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF failing.line_count < 2 THEN
        RAISE EXCEPTION 'journal entry % has % line(s); an entry needs a debit and a credit',
            failing.entry, failing.line_count
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RAISE EXCEPTION 'journal entry % does not balance: debits exceed credits by %', failing.entry, failing.difference
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE CONSTRAINT TRIGGER ledger_balance_pending_check AFTER INSERT ON ledger_balance_pending
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_noted_entries();

CREATE OR REPLACE FUNCTION ledger_note_new_entries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_entry_to_check SELECT txid_current(), id FROM added;
    IF FOUND THEN
        INSERT INTO ledger_balance_pending VALUES (txid_current()) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION ledger_note_entries_of_new_lines() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_entry_to_check SELECT DISTINCT txid_current(), entry_id FROM added;
    IF FOUND THEN
        INSERT INTO ledger_balance_pending VALUES (txid_current()) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER journalentry_note_for_balance_check AFTER INSERT ON ledger_journalentry
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION ledger_note_new_entries();
CREATE TRIGGER journalline_note_for_balance_check AFTER INSERT ON ledger_journalline
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION ledger_note_entries_of_new_lines();

DROP TRIGGER journalline_entry_balanced ON ledger_journalline;
DROP TRIGGER journalentry_has_balanced_lines ON ledger_journalentry;
DROP FUNCTION ledger_check_new_line();
DROP FUNCTION ledger_check_new_entry();
DROP FUNCTION ledger_assert_entry_balanced(bigint);
"""

# Back to migration 0002's per-row checks.
DROP = r"""
DROP TRIGGER IF EXISTS journalline_note_for_balance_check ON ledger_journalline;
DROP TRIGGER IF EXISTS journalentry_note_for_balance_check ON ledger_journalentry;
DROP FUNCTION IF EXISTS ledger_note_entries_of_new_lines();
DROP FUNCTION IF EXISTS ledger_note_new_entries();
DROP TABLE IF EXISTS ledger_balance_pending;
DROP FUNCTION IF EXISTS ledger_check_noted_entries();
DROP TABLE IF EXISTS ledger_entry_to_check;

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


def _run(schema_editor, sql):
    if schema_editor.connection.vendor == "postgresql":
        # Through a plain cursor without parameters: the SQL's own % signs are not placeholders.
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(sql)


def check_once_per_transaction(apps, schema_editor):
    _run(schema_editor, CREATE)


def check_once_per_row(apps, schema_editor):
    _run(schema_editor, DROP)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0003_default_chart")]

    operations = [migrations.RunPython(check_once_per_transaction, check_once_per_row)]
