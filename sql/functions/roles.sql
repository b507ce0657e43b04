-- roles.sql: the daemon's least-privileged role (SPEC §11, README "Setup").
-- The owner role owns the schema, runs `bayarhook migrate`, retention and
-- redaction; the daemon logs in as another role that may read and add
-- audit rows but never change or remove one. `bayarhook grant --role NAME`
-- runs this as the owner.

-- Gives role exactly what `bayarhook serve` needs, taking away anything
-- more it had on the schema's tables and sequences first, and returns the
-- statements (run unless dry_run). By kind of table, so that a table a
-- later migration adds is covered when this runs again after migrate:
--   callbacks            SELECT, INSERT: the audit is append-only for it
--   audit_anchors,
--   schema_version       SELECT
--   every other table    SELECT, INSERT, UPDATE (payments, jobs, their
--                        history, alerts, reconciler passes, ...); nothing
--                        the daemon does deletes a row
--   sequences            USAGE (nextval of the ids)
--   audit_partitions_ensure()  EXECUTE: the months ahead, as the owner
-- The partitions of callbacks get nothing: they are reached through it.
CREATE OR REPLACE FUNCTION bayarhook.grant_daemon(role_name text, dry_run boolean DEFAULT false)
RETURNS SETOF text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    r       oid := to_regrole(quote_ident(role_name));
    t       record;
    stmt    text;
    stmts   text[] := '{}';
    owned   text;
BEGIN
    IF r IS NULL THEN
        RAISE EXCEPTION 'role "%" does not exist (CREATE ROLE % LOGIN first)', role_name, role_name
            USING ERRCODE = 'undefined_object';
    END IF;
    IF (SELECT rolsuper FROM pg_roles WHERE oid = r) THEN
        RAISE EXCEPTION 'role "%" is a superuser: no grant can limit it', role_name
            USING ERRCODE = 'invalid_grant_operation';
    END IF;
    SELECT string_agg(c.oid::regclass::text, ', ') INTO owned
      FROM pg_class c
     WHERE c.relnamespace = 'bayarhook'::regnamespace AND c.relowner = r;
    IF owned IS NOT NULL OR pg_has_role(r, (SELECT nspowner FROM pg_namespace
                                             WHERE nspname = 'bayarhook'), 'USAGE') THEN
        RAISE EXCEPTION 'role "%" owns the schema or its tables (%): an owner cannot be limited',
            role_name, coalesce(owned, 'schema bayarhook')
            USING ERRCODE = 'invalid_grant_operation',
                  HINT = 'Run migrate as another role, or REASSIGN OWNED BY it to the owner role (README, "Setup").';
    END IF;
    stmts := stmts || format('REVOKE ALL ON ALL TABLES IN SCHEMA bayarhook FROM %I', role_name)
                   || format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA bayarhook FROM %I', role_name)
                   || format('GRANT USAGE ON SCHEMA bayarhook TO %I', role_name);
    FOR t IN
        SELECT c.relname FROM pg_class c
         WHERE c.relnamespace = 'bayarhook'::regnamespace AND c.relkind IN ('r', 'p')
           AND NOT c.relispartition
         ORDER BY c.relname
    LOOP
        stmts := stmts || format('GRANT %s ON bayarhook.%I TO %I',
                                 CASE t.relname
                                     WHEN 'callbacks' THEN 'SELECT, INSERT'
                                     WHEN 'audit_anchors' THEN 'SELECT'
                                     WHEN 'schema_version' THEN 'SELECT'
                                     ELSE 'SELECT, INSERT, UPDATE' END,
                                 t.relname, role_name);
    END LOOP;
    stmts := stmts || format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA bayarhook TO %I', role_name);
    IF to_regprocedure('bayarhook.audit_partitions_ensure(integer)') IS NOT NULL THEN
        stmts := stmts || format('GRANT EXECUTE ON FUNCTION'
                                 ' bayarhook.audit_partitions_ensure(integer) TO %I', role_name);
    END IF;
    FOREACH stmt IN ARRAY stmts LOOP
        IF NOT dry_run THEN
            EXECUTE stmt;
        END IF;
        RETURN NEXT stmt;
    END LOOP;
END
$fn$;
