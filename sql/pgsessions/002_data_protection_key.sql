-- PgSessions schema, version 2: the ASP.NET Core Data Protection key ring, so every app instance protects and
-- unprotects session and auth cookies with the same keys without a shared file system.
-- Rows are only ever added; Data Protection marks keys revoked or expired inside their XML.
CREATE TABLE IF NOT EXISTS {schema}.data_protection_key (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    friendly_name text        COLLATE "C",
    xml           text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
