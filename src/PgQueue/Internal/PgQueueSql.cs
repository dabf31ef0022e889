using PgFirst.Core;

namespace PgQueue.Internal;

// The runtime statements, rendered once per schema. Values are always parameters.
internal sealed class PgQueueSql(string schemaName)
{
    private readonly string _schema = PgSqlIdentifier.Quote(schemaName);

    public const string FinishedColumns = "id, queue, state, priority, attempt, max_attempts, lease, kind, payload, unique_key, enqueued_at, claimed_at, finished_at, delete_after, trace_parent, errors";

    // The channel is the schema's name: one LISTEN per process covers every queue (the payload names the queue).
    public string Channel { get; } = schemaName;

    public string Listen => $"LISTEN {_schema}";

    public string Enqueue => $"""
        INSERT INTO {_schema}.job (queue, priority, state, run_at, max_attempts, kind, payload, unique_key, enqueued_at, trace_parent)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
        RETURNING id
        """;

    public string FindUnique => $"""
        SELECT id
        FROM {_schema}.job
        WHERE unique_key = $1
        """;

    public const string AsynchronousCommit = "SELECT set_config('synchronous_commit', 'off', true)";

    public const string Notify = "SELECT pg_notify($1, q) FROM unnest($2::text[]) AS q";

    // Array parameters, one statement per chunk: about as fast as COPY here, and it keeps ON CONFLICT for unique keys
    // (a key repeated inside the batch counts as a duplicate too).
    public string EnqueueMany => $"""
        INSERT INTO {_schema}.job (queue, priority, state, run_at, max_attempts, kind, payload, unique_key, enqueued_at, trace_parent)
        SELECT *
        FROM unnest($1::text[], $2::smallint[], $3::smallint[], $4::timestamptz[], $5::integer[], $6::text[], $7::jsonb[], $8::text[], $9::timestamptz[], $10::text[])
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
        """;

    // The claim: a materialized CTE is the optimization fence that keeps the LIMIT … SKIP LOCKED subquery an index
    // range scan over job_claim_idx (a plain IN (subquery) can plan as a hash join over the table, and can update
    // more rows than LIMIT). The old run_at comes back for the enqueue-to-start latency.
    public string Claim => $"""
        WITH picked AS MATERIALIZED (
            SELECT c.id, c.run_at
            FROM {_schema}.job AS c
            WHERE c.queue = $1
              AND c.state = 0
            ORDER BY c.priority DESC, c.run_at, c.id
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        UPDATE {_schema}.job AS j
        SET state = 1,
            attempt = j.attempt + 1,
            lease = j.lease + 1,
            run_at = $4,
            claimed_at = $3,
            claimed_by = $5
        FROM picked
        WHERE j.id = picked.id
        RETURNING j.id, j.lease, j.kind, j.payload::text, j.attempt, j.max_attempts, j.enqueued_at, picked.run_at, j.trace_parent, j.errors::text
        """;

    // Success with retention: the row moves to job_finished in the same statement.
    public string CompleteKeep => $"""
        WITH done AS (
            DELETE FROM {_schema}.job AS j
            USING unnest($1::bigint[], $2::bigint[]) AS d(id, lease)
            WHERE j.id = d.id
              AND j.lease = d.lease
            RETURNING j.*
        )
        INSERT INTO {_schema}.job_finished ({FinishedColumns})
        SELECT id, queue, 3, priority, attempt, max_attempts, lease, kind, payload, unique_key, enqueued_at, claimed_at, $3, $4, trace_parent, errors
        FROM done
        """;

    // Success without retention (SucceededRetention = 0): the row is simply deleted.
    public string CompleteDelete => $"""
        DELETE FROM {_schema}.job AS j
        USING unnest($1::bigint[], $2::bigint[]) AS d(id, lease)
        WHERE j.id = d.id
          AND j.lease = d.lease
        """;

    public string CompleteOne => $"""
        WITH done AS (
            DELETE FROM {_schema}.job AS j
            WHERE j.id = $1
              AND j.lease = $2
            RETURNING j.*
        )
        INSERT INTO {_schema}.job_finished ({FinishedColumns})
        SELECT id, queue, 3, priority, attempt, max_attempts, lease, kind, payload, unique_key, enqueued_at, claimed_at, $3, $4, trace_parent, errors
        FROM done
        """;

    // The same inside the caller's transaction without retention (SucceededRetention = 0): the row is simply deleted,
    // as the batched path does.
    public string CompleteOneDelete => $"""
        DELETE FROM {_schema}.job AS j
        WHERE j.id = $1
          AND j.lease = $2
        """;

    public string Retry => $"""
        UPDATE {_schema}.job AS j
        SET state = CASE WHEN $3 <= $6 THEN 0 ELSE 2 END,
            run_at = $3,
            attempt = j.attempt - $5,
            claimed_by = NULL,
            errors = CASE WHEN $4::jsonb IS NULL THEN j.errors ELSE coalesce(j.errors, '[]'::jsonb) || $4::jsonb END
        WHERE j.id = $1
          AND j.lease = $2
        """;

    public string Finish => $"""
        WITH done AS (
            DELETE FROM {_schema}.job AS j
            WHERE j.id = $1
              AND j.lease = $2
            RETURNING j.*
        )
        INSERT INTO {_schema}.job_finished ({FinishedColumns})
        SELECT id, queue, $3, priority, attempt, max_attempts, lease, kind, payload, unique_key, enqueued_at, claimed_at, $4, $5, trace_parent,
               coalesce(errors, '[]'::jsonb) || $6::jsonb
        FROM done
        """;

    public string ExtendLeases => $"""
        UPDATE {_schema}.job AS j
        SET run_at = $3
        FROM unnest($1::bigint[], $2::bigint[]) AS d(id, lease)
        WHERE j.id = d.id
          AND j.lease = d.lease
          AND j.state = 1
        RETURNING j.id
        """;

    public string Release => $"""
        UPDATE {_schema}.job AS j
        SET state = 0,
            attempt = j.attempt - 1,
            run_at = $3,
            claimed_by = NULL
        FROM unnest($1::bigint[], $2::bigint[]) AS d(id, lease)
        WHERE j.id = d.id
          AND j.lease = d.lease
          AND j.state = 1
        """;

    public string Promote => $"""
        SELECT queue, promoted
        FROM {_schema}.queue_promote($1)
        """;

    public string GetJob => $"""
        SELECT id, queue, state, priority, attempt, max_attempts, kind, payload::text, unique_key, enqueued_at, run_at, claimed_at, NULL::timestamptz, claimed_by, errors::text
        FROM {_schema}.job
        WHERE id = $1
        UNION ALL
        SELECT id, queue, state, priority, attempt, max_attempts, kind, payload::text, unique_key, enqueued_at, NULL, claimed_at, finished_at, NULL, errors::text
        FROM {_schema}.job_finished
        WHERE id = $1
        """;

    public string ListFinished => $"""
        SELECT id, queue, state, priority, attempt, max_attempts, kind, payload::text, unique_key, enqueued_at, NULL::timestamptz, claimed_at, finished_at, NULL::text, errors::text
        FROM {_schema}.job_finished
        WHERE state = $1
          AND ($2::text IS NULL OR queue = $2)
        ORDER BY finished_at DESC, id DESC
        LIMIT $3
        """;

    // A dead or cancelled job goes back with fresh attempts, unless its unique key is held again. A concurrent insert
    // of the same key makes the INSERT fail with a unique violation, which rolls the DELETE back: never lost.
    public string Requeue => $"""
        WITH moved AS (
            DELETE FROM {_schema}.job_finished AS f
            WHERE f.id = $1
              AND f.state IN (4, 5)
              AND NOT EXISTS (SELECT 1 FROM {_schema}.job AS j WHERE j.unique_key = f.unique_key)
            RETURNING f.*
        )
        INSERT INTO {_schema}.job (id, queue, priority, state, run_at, attempt, max_attempts, lease, kind, payload, unique_key, enqueued_at, trace_parent, errors)
        SELECT id, queue, priority, 0, $2, 0, max_attempts, lease, kind, payload, unique_key, enqueued_at, trace_parent, errors
        FROM moved
        RETURNING queue
        """;

    public string Cancel => $"""
        WITH done AS (
            DELETE FROM {_schema}.job AS j
            WHERE j.id = $1
              AND j.state IN (0, 2)
            RETURNING j.*
        )
        INSERT INTO {_schema}.job_finished ({FinishedColumns})
        SELECT id, queue, 4, priority, attempt, max_attempts, lease, kind, payload, unique_key, enqueued_at, claimed_at, $2, $3, trace_parent,
               coalesce(errors, '[]'::jsonb) || $4::jsonb
        FROM done
        """;

    // Bounded counts only: each state is counted up to the cap through an index, never with an unbounded count(*).
    public string Stats => $"""
        SELECT q,
               (SELECT count(*) FROM (SELECT 1 FROM {_schema}.job WHERE queue = q AND state = 0 LIMIT $2) AS a),
               (SELECT count(*) FROM (SELECT 1 FROM {_schema}.job WHERE queue = q AND state = 2 LIMIT $2) AS s),
               (SELECT count(*) FROM (SELECT 1 FROM {_schema}.job WHERE queue = q AND state = 1 LIMIT $2) AS r),
               (SELECT count(*) FROM (SELECT 1 FROM {_schema}.job_finished WHERE queue = q AND state = 5 LIMIT $2) AS d)
        FROM unnest($1::text[]) WITH ORDINALITY AS u(q, n)
        ORDER BY n
        """;

    public string ListQueues => $"""
        SELECT queue FROM {_schema}.job
        UNION
        SELECT queue FROM {_schema}.job_finished
        ORDER BY 1
        """;

    // The oldest due job of a queue: the claim index is ordered by priority first, so each priority's first entry is
    // its oldest; a recursive skip over the priorities finds them in a few probes however deep the queue is.
    public string OldestDue => $"""
        SELECT q,
               (WITH RECURSIVE p AS (
                    (SELECT j.priority, j.run_at FROM {_schema}.job AS j
                     WHERE j.queue = q AND j.state = 0
                     ORDER BY j.priority DESC, j.run_at, j.id
                     LIMIT 1)
                    UNION ALL
                    SELECT n.priority, n.run_at
                    FROM p, LATERAL (
                        SELECT j.priority, j.run_at FROM {_schema}.job AS j
                        WHERE j.queue = q AND j.state = 0 AND j.priority < p.priority
                        ORDER BY j.priority DESC, j.run_at, j.id
                        LIMIT 1) AS n
                )
                SELECT min(run_at) FROM p WHERE run_at <= $2)
        FROM unnest($1::text[]) WITH ORDINALITY AS u(q, n)
        ORDER BY n
        """;

    // Jobs finished in a window, by queue and state: reads the window's finished jobs (no index covers it).
    public string FinishedSince => $"""
        SELECT q,
               (SELECT count(*) FROM {_schema}.job_finished WHERE queue = q AND state = 3 AND finished_at >= $2),
               (SELECT count(*) FROM {_schema}.job_finished WHERE queue = q AND state = 4 AND finished_at >= $2),
               (SELECT count(*) FROM {_schema}.job_finished WHERE queue = q AND state = 5 AND finished_at >= $2)
        FROM unnest($1::text[]) WITH ORDINALITY AS u(q, n)
        ORDER BY n
        """;

    // Keyset paging of a queue's dead jobs on job_finished_dead_idx (queue, finished_at DESC, id DESC).
    public string DeadPage => $"""
        SELECT id, finished_at
        FROM {_schema}.job_finished
        WHERE queue = $1
          AND state = 5
          AND finished_at <= $2
          AND ($3::timestamptz IS NULL OR (finished_at, id) < ($3, $4))
        ORDER BY finished_at DESC, id DESC
        LIMIT $5
        """;

    public string CountFinishedBefore => $"""
        SELECT count(*) FROM {_schema}.job_finished
        WHERE finished_at < $1 AND ($2::text IS NULL OR queue = $2)
        """;

    public string PurgeFinishedRange => $"""
        WITH d AS (
            DELETE FROM {_schema}.job_finished
            WHERE id >= $3 AND id < $4
              AND finished_at < $1
              AND ($2::text IS NULL OR queue = $2)
            RETURNING 1
        )
        SELECT count(*) FROM d
        """;

    public string FinishedIdRange => $"SELECT min(id), max(id) FROM {_schema}.job_finished WHERE id >= $1";

    // A new definition, or a changed schedule, takes the caller's next occurrence; an unchanged one keeps its own.
    public string UpsertRecurring => $"""
        INSERT INTO {_schema}.recurring_job AS r (name, cron, time_zone, queue, kind, payload, priority, max_attempts, next_run_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (name) DO UPDATE
        SET next_run_at = CASE WHEN r.cron = EXCLUDED.cron AND r.time_zone = EXCLUDED.time_zone THEN r.next_run_at ELSE EXCLUDED.next_run_at END,
            cron = EXCLUDED.cron,
            time_zone = EXCLUDED.time_zone,
            queue = EXCLUDED.queue,
            kind = EXCLUDED.kind,
            payload = EXCLUDED.payload,
            priority = EXCLUDED.priority,
            max_attempts = EXCLUDED.max_attempts
        """;

    public string DueRecurring => $"""
        SELECT name, cron, time_zone, queue, kind, payload::text, priority, max_attempts
        FROM {_schema}.recurring_job
        WHERE next_run_at <= $1
        ORDER BY next_run_at
        LIMIT 100
        FOR UPDATE SKIP LOCKED
        """;

    public string FireRecurring => $"""
        WITH job AS (
            INSERT INTO {_schema}.job (queue, priority, state, run_at, max_attempts, kind, payload, enqueued_at)
            SELECT queue, priority, 0, $2, max_attempts, kind, payload, $2
            FROM {_schema}.recurring_job
            WHERE name = $1
            RETURNING id
        )
        UPDATE {_schema}.recurring_job
        SET next_run_at = $3,
            last_enqueued_at = $2,
            last_job_id = (SELECT id FROM job)
        WHERE name = $1
        """;

    public string DeleteFinished => $"SELECT {_schema}.queue_delete_finished($1, $2)";

    public string Ping => $"SELECT count(*) FROM (SELECT 1 FROM {_schema}.job LIMIT 1) AS j";
}
