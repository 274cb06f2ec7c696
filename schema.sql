-- TRACE survey tables: the whole schema in one file, equal to applying every file in migrations/ (a test checks
-- that), for psql users and for reading. It creates a new schema at the newest version, version rows included, and
-- is safe to run again on it. An existing schema at an older version is refused: upgrade it with npm run db:apply.
--   psql:  psql -v schema=trace -f schema.sql      (the schema name defaults to trace)
--   npm:   npm run db:apply                         (applies migrations/ to DB_SCHEMA; see docs/schema-upgrades.md)
\set ON_ERROR_STOP on
\if :{?schema}
\else
\set schema trace
\endif

CREATE SCHEMA IF NOT EXISTS :"schema";
SET search_path TO :"schema";

-- Refuse a schema this file would not upgrade: IF NOT EXISTS skips a table that exists, whatever its columns.
DO $guard$
DECLARE
  newest CONSTANT integer := 6; -- the number of the newest file in migrations/
  current integer;
BEGIN
  IF to_regclass('schema_migrations') IS NOT NULL THEN
    SELECT coalesce(max(version), 0) INTO current FROM schema_migrations;
    IF current < newest THEN
      RAISE EXCEPTION 'schema % is at version %, schema.sql is version %: upgrade it with npm run db:apply', current_schema(), current, newest;
    END IF;
  ELSIF to_regclass('instructors') IS NOT NULL THEN
    RAISE EXCEPTION 'schema % has tables but no schema_migrations table: run npm run db:apply, which records it as version 1 and upgrades it', current_schema();
  END IF;
END
$guard$;

-- One row per applied migration. The consumer reads it at its first invocation and refuses to run on a version it
-- cannot work with; `compatible` says code for the previous version still works here (see docs/schema-upgrades.md).
-- checksum is the SHA-256 of the migration file as applied by npm run db:apply, NULL for rows written by this file.
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  compatible boolean NOT NULL,
  checksum   text,
  applied_at timestamptz NOT NULL DEFAULT now()
);


-- Instructors are found or created by name, normalised by the consumer (trimmed, inner whitespace as one space).
CREATE TABLE IF NOT EXISTS instructors (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name       text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Courses are upserted by course_id. The report_* columns record which report the attributes come from: a newer
-- report (report_at, then Kafka offset, then partition) replaces them, an older one does not.
CREATE TABLE IF NOT EXISTS courses (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  course_id          text NOT NULL UNIQUE,
  course_name        text,
  subject            text,
  catalog_section    text,
  semester           text,
  year               integer,
  enrollment         integer,
  responses          integer,
  declines           integer,
  processed_at       timestamptz,
  original_file_name text,
  gcs_bucket         text,
  gcs_path           text,
  trace_id           text NOT NULL,
  report_at          timestamptz NOT NULL,
  report_offset      bigint NOT NULL,
  report_partition   integer NOT NULL,
  updated_at         timestamptz NOT NULL DEFAULT now()
);

-- One row per course and instructor, naming the report whose ratings and comments the pair currently holds.
CREATE TABLE IF NOT EXISTS course_instructors (
  course_id        bigint NOT NULL REFERENCES courses (id),
  instructor_id    bigint NOT NULL REFERENCES instructors (id),
  trace_id         text NOT NULL,
  report_at        timestamptz NOT NULL,
  report_offset    bigint NOT NULL,
  report_partition integer NOT NULL,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (course_id, instructor_id)
);
CREATE INDEX IF NOT EXISTS course_instructors_instructor_idx ON course_instructors (instructor_id);

-- Ratings and comments belong to a pair and are replaced as a whole when a newer report for the pair arrives.
-- No foreign keys here: the consumer writes them only for pairs it has just locked, and a per-row key check would
-- cost more than the rest of the insert. The primary key leads with the pair, so that one index serves both the
-- key and the replacement of a pair's rows: every row copied in updates one index, not two.
-- Their ids come from identity sequences that hand each session 1000 values at a time (migration 0006): copying a
-- report's rows then does not update the sequence once per row. Ids have gaps and, across sessions, do not follow
-- insertion order; nothing relies on either.
CREATE TABLE IF NOT EXISTS ratings (
  id            bigint GENERATED ALWAYS AS IDENTITY (CACHE 1000),
  course_id     bigint NOT NULL,
  instructor_id bigint NOT NULL,
  trace_id      text NOT NULL,
  question_text text,
  category      text,
  responses     integer,
  response_rate double precision,
  course_mean   double precision,
  dept_mean     double precision,
  univ_mean     double precision,
  course_median double precision,
  dept_median   double precision,
  univ_median   double precision,
  CONSTRAINT ratings_pkey PRIMARY KEY (course_id, instructor_id, id)
);

CREATE TABLE IF NOT EXISTS comments (
  id              bigint GENERATED ALWAYS AS IDENTITY (CACHE 1000),
  course_id       bigint NOT NULL,
  instructor_id   bigint NOT NULL,
  trace_id        text NOT NULL,
  category        text,
  question_text   text,
  response_number integer,
  comment_text    text,
  CONSTRAINT comments_pkey PRIMARY KEY (course_id, instructor_id, id)
);

-- Exactly once: a trace id is claimed here in the same transaction that writes its data; a second claim finds it.
CREATE TABLE IF NOT EXISTS processed_traces (
  trace_id        text PRIMARY KEY,
  status          text NOT NULL CHECK (status IN ('stored', 'superseded', 'upstream_error')),
  error           text,
  kafka_topic     text NOT NULL,
  kafka_partition integer NOT NULL,
  kafka_offset    bigint NOT NULL,
  report_at       timestamptz,
  processed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS processed_traces_processed_at_idx ON processed_traces (processed_at);

-- Each part is length-prefixed (-1 for null), so that no two different records encode to the same bytes: a null key
-- differs from an empty one, and bytes cannot move between key, value and headers. Header keys and values are taken
-- in Kafka order, pairwise. Built-in functions only: PostgreSQL finds them in pg_catalog before the search_path.
CREATE OR REPLACE FUNCTION dead_letter_digest(key bytea, value bytea, header_keys bytea[], header_values bytea[])
RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT sha256(
    coalesce(int4send(length(key)) || key, '\xffffffff'::bytea)
    || coalesce(int4send(length(value)) || value, '\xffffffff'::bytea)
    || int4send(coalesce(cardinality(header_keys), -1))
    || coalesce((
      SELECT string_agg(
        coalesce(int4send(length(k)) || k, '\xffffffff'::bytea)
        || coalesce(int4send(length(v)) || v, '\xffffffff'::bytea), ''::bytea ORDER BY n)
      FROM unnest(header_keys, header_values) WITH ORDINALITY AS h(k, v, n)), ''::bytea))
$$;

-- Records that can never be stored, with their bytes exactly as received and a stable reason code.
CREATE TABLE IF NOT EXISTS dead_letters (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kafka_topic     text NOT NULL,
  kafka_partition integer NOT NULL,
  kafka_offset    bigint NOT NULL,
  kafka_timestamp timestamptz,
  key             bytea,
  value           bytea,
  -- Unused since schema version 2 (kept so that version-1 code still runs); see header_keys and header_values.
  headers         jsonb,
  -- Kafka headers byte-exact and in Kafka order, repeats kept: the UTF-8 bytes of each key, and each value.
  -- Read them with unnest(header_keys, header_values) WITH ORDINALITY and convert_from(key, 'UTF8').
  header_keys     bytea[] NOT NULL DEFAULT '{}',
  header_values   bytea[] NOT NULL DEFAULT '{}',
  reason          text NOT NULL,
  detail          text,
  trace_id        text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  -- Redrive bookkeeping (migration 0003): when, with what result, the new reason if dead-lettered again, how often.
  redriven_at     timestamptz,
  redrive_result  text CHECK (redrive_result IN ('stored', 'duplicate', 'superseded', 'upstream_error', 'dead_lettered')),
  redrive_reason  text,
  redrive_detail  text,
  redrive_count   integer NOT NULL DEFAULT 0,
  -- A dead letter is its coordinates and its bytes (migration 0005): an identical replay changes nothing, a different
  -- record at the same coordinates (topic recreated, another cluster) gets its own row instead of being lost.
  record_digest   bytea NOT NULL GENERATED ALWAYS AS (dead_letter_digest(key, value, header_keys, header_values)) STORED,
  CONSTRAINT dead_letters_identity_key UNIQUE (kafka_topic, kafka_partition, kafka_offset, record_digest)
);
CREATE INDEX IF NOT EXISTS dead_letters_created_at_idx ON dead_letters (created_at);
COMMENT ON COLUMN dead_letters.headers IS 'Unused since schema version 2: see header_keys and header_values.';
CREATE INDEX IF NOT EXISTS dead_letters_reason_id_idx ON dead_letters (reason, id);

-- The migrations this file is equal to, one row each: version, the name in its file name, its compatible flag.
INSERT INTO schema_migrations (version, name, compatible) VALUES
  (1, 'initial', false),
  (2, 'dead_letter_headers', true),
  (3, 'dead_letter_redrive', true),
  (4, 'ratings_keyed_by_pair', true),
  (5, 'dead_letter_identity', false),
  (6, 'identity_cache', true)
ON CONFLICT (version) DO NOTHING;
