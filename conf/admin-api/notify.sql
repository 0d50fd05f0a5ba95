-- Optional: instant change detection for cti-kaltura-admin-api. Installs one statement-level
-- trigger per routing table that sends NOTIFY cti_kaltura_routing when a statement changes the
-- table. PostgreSQL delivers a NOTIFY only when its transaction commits, so the admin API reads
-- the database right after each committed change, and never sees half of a transaction.
-- The admin application needs no change. Safe to run again. Without it the admin API still
-- notices changes through its periodic fingerprint query (database.fingerprint_interval_ms).
--   psql "$DATABASE_URL" -f conf/admin-api/notify.sql
-- To remove: DROP FUNCTION cti_kaltura_routing_notify() CASCADE;
SET client_min_messages = warning;

CREATE OR REPLACE FUNCTION cti_kaltura_routing_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('cti_kaltura_routing', TG_TABLE_NAME);
  RETURN NULL;
END;
$$;

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['regions', 'subnets', 'server_groups', 'servers', 'linear_channels',
                           'tv_streams', 'programs', 'program_records', 'region_server_groups',
                           'server_group_servers']
  LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS cti_kaltura_routing_%1$s ON %1$I', t);
    EXECUTE format('CREATE TRIGGER cti_kaltura_routing_%1$s AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE '
                   'ON %1$I FOR EACH STATEMENT EXECUTE FUNCTION cti_kaltura_routing_notify()', t);
  END LOOP;
END;
$$;
