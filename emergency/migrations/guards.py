"""The append-only guards of the audit tables, as the schema's head revision has them.

Opening a store puts back any that were dropped (an operator with SQL access, a restore
that skipped triggers); the hash chain and the checkpoints catch what was done meanwhile.
A revision that changes a guard changes it here too: tests/store/test_migrations.py checks
that these statements leave a database at head exactly as the migrations made it.
"""

from __future__ import annotations

_SQLITE_TABLES = ("audit_log", "audit_checkpoints", "audit_keys")

SQLITE: tuple[str, ...] = tuple(
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table}\n"
    f"    BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
    for table in _SQLITE_TABLES
    for verb in ("UPDATE", "DELETE")
)

POSTGRES: tuple[str, ...] = (
    """CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$""",
    *(
        f"CREATE OR REPLACE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table}\n"
        f"    FOR EACH {'STATEMENT' if verb == 'TRUNCATE' else 'ROW'} EXECUTE FUNCTION audit_log_append_only()"
        for table in _SQLITE_TABLES
        for verb in ("UPDATE", "DELETE", "TRUNCATE")
    ),
)
