-- Version 1: the tables as the first deployments created them (schema.sql before versioned migrations).
-- Table names are unqualified: the runner sets search_path to the target schema (DB_SCHEMA) for this transaction.

-- Instructors are found or created by name, normalised by the consumer (trimmed, inner whitespace as one space).
CREATE TABLE instructors (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name       text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Courses are upserted by course_id. The report_* columns record which report the attributes come from: a newer
-- report (report_at, then Kafka offset, then partition) replaces them, an older one does not.
CREATE TABLE courses (
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
CREATE TABLE course_instructors (
  course_id        bigint NOT NULL REFERENCES courses (id),
  instructor_id    bigint NOT NULL REFERENCES instructors (id),
  trace_id         text NOT NULL,
  report_at        timestamptz NOT NULL,
  report_offset    bigint NOT NULL,
  report_partition integer NOT NULL,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (course_id, instructor_id)
);
CREATE INDEX course_instructors_instructor_idx ON course_instructors (instructor_id);

-- Ratings and comments belong to a pair and are replaced as a whole when a newer report for the pair arrives.
-- No foreign keys here: the consumer writes them only for pairs it has just locked, and a per-row key check would
-- cost more than the rest of the insert.
CREATE TABLE ratings (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
  univ_median   double precision
);
CREATE INDEX ratings_pair_idx ON ratings (course_id, instructor_id);

CREATE TABLE comments (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  course_id       bigint NOT NULL,
  instructor_id   bigint NOT NULL,
  trace_id        text NOT NULL,
  category        text,
  question_text   text,
  response_number integer,
  comment_text    text
);
CREATE INDEX comments_pair_idx ON comments (course_id, instructor_id);

-- Exactly once: a trace id is claimed here in the same transaction that writes its data; a second claim finds it.
CREATE TABLE processed_traces (
  trace_id        text PRIMARY KEY,
  status          text NOT NULL CHECK (status IN ('stored', 'superseded', 'upstream_error')),
  error           text,
  kafka_topic     text NOT NULL,
  kafka_partition integer NOT NULL,
  kafka_offset    bigint NOT NULL,
  report_at       timestamptz,
  processed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processed_traces_processed_at_idx ON processed_traces (processed_at);

-- Records that can never be stored, with their bytes exactly as received and a stable reason code.
CREATE TABLE dead_letters (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kafka_topic     text NOT NULL,
  kafka_partition integer NOT NULL,
  kafka_offset    bigint NOT NULL,
  kafka_timestamp timestamptz,
  key             bytea,
  value           bytea,
  headers         jsonb NOT NULL DEFAULT '{}',
  reason          text NOT NULL,
  detail          text,
  trace_id        text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);
CREATE INDEX dead_letters_created_at_idx ON dead_letters (created_at);
