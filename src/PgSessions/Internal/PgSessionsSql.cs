using PgFirst.Core;

namespace PgSessions.Internal;

// The runtime statements, rendered once per schema. Values are always parameters.
internal sealed class PgSessionsSql(string schemaName)
{
    private readonly string _schema = PgSqlIdentifier.Quote(schemaName);

    public const string Columns = "key_hash, session_id, tenant_id, user_id, created_at, last_seen_at, idle_timeout, absolute_expires_at, version, data, client_ip, user_agent";

    public string Load => $"""
        SELECT {Columns}
        FROM {_schema}.session_load($1, $2, $3, $4)
        """;

    // On a read replica, where nothing can be written: the row, and whether its touch is due (the rule of
    // session_load). A due touch, or a miss, is loaded again on the primary.
    public string ReplicaLoad => $"""
        SELECT {Columns}, $3 - last_seen_at >= $4
        FROM {_schema}.session
        WHERE key_hash = $1
          AND tenant_id = $2
          AND expires_at > $3
        """;

    // A dead row under the same hash (its cleanup not run yet) is replaced; a live one is left alone. $12: asynchronous.
    public string Insert => $"""
        SELECT {_schema}.session_insert($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        """;

    // Written as sent at the expected version, else the request's changes merged into the row as it is (see
    // sql/pgsessions/003_session_commit.sql). Columns: status, data_bytes, then the session's columns.
    public string Commit => $"""
        SELECT status, data_bytes, {Columns}
        FROM {_schema}.session_commit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
        """;

    // The last-seen time (and with it the indexed expiry) moves only when older than the touch interval ($10), so the
    // common write changes no indexed column and is a HOT update.
    public string Update => $"""
        UPDATE {_schema}.session
        SET key_hash = $2,
            data = $5,
            user_id = $6,
            idle_timeout = $7,
            absolute_expires_at = $8,
            last_seen_at = CASE WHEN $9 - last_seen_at >= $10 THEN $9 ELSE last_seen_at END,
            expires_at = LEAST(CASE WHEN $9 - last_seen_at >= $10 THEN $9 ELSE last_seen_at END + $7, $8),
            version = version + 1
        WHERE key_hash = $1
          AND tenant_id = $3
          AND version = $4
          AND expires_at > $9
        RETURNING version
        """;

    public string List => $"""
        SELECT session_id, user_id, created_at, last_seen_at, expires_at, absolute_expires_at, client_ip, user_agent
        FROM {_schema}.session
        WHERE tenant_id = $1
          AND user_id = $2
          AND expires_at > $3
        ORDER BY created_at DESC, session_id
        """;

    public string Revoke => $"""
        DELETE FROM {_schema}.session
        WHERE tenant_id = $1
          AND session_id = $2
        """;

    public string RevokeAll => $"""
        DELETE FROM {_schema}.session
        WHERE tenant_id = $1
          AND user_id = $2
          AND ($3::uuid IS NULL OR session_id <> $3::uuid)
        """;

    public string Ping => $"""
        SELECT NULL::integer
        FROM {_schema}.session
        LIMIT 0
        """;
}
