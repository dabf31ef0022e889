-- PgFirst core bookkeeping, version 1. Idempotent: safe to run on every deploy.
-- The schema token (brace-wrapped "schema") is replaced with the quoted schema name by the installer, or by hand: see sql/README.md.
-- Applied before every module's scripts, in the same transaction, under the installer's advisory lock.

CREATE SCHEMA IF NOT EXISTS {schema};

-- One row per applied script. The installer reads it to skip what is already there; a DBA can read it to
-- see which version of each module a database carries. Forward-only: rows are never updated or deleted.
CREATE TABLE IF NOT EXISTS {schema}.schema_version (
    module      text        NOT NULL,
    version     integer     NOT NULL,
    script      text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (module, version)
);

-- One row per maintenance task (module cleanup function). The elected leader records when it last ran
-- the task, so several app instances share one schedule instead of each cleaning on its own interval.
CREATE TABLE IF NOT EXISTS {schema}.maintenance_state (
    task            text        PRIMARY KEY,
    last_run_at     timestamptz NOT NULL,
    last_rows       bigint      NOT NULL DEFAULT 0
);
