namespace PgFirst.Core;

/// <summary>
/// What sits between the app and PostgreSQL on the data source PgFirst uses, and so which protocol features PgFirst
/// may rely on. See <c>docs/production.md</c>.
/// </summary>
public enum PgPoolerMode
{
    /// <summary>
    /// A direct connection: PgFirst prepares its hot statements once per connection and may LISTEN on a pooled
    /// connection. The <c>AddPgFirstPostgres()</c> health check reports Degraded when it finds a pooler in between.
    /// </summary>
    None = 0,

    /// <summary>
    /// A transaction pooler (PgBouncer <c>pool_mode = transaction</c>, Azure's built-in PgBouncer, Supabase's pooler,
    /// RDS Proxy): consecutive transactions of one client connection may run on different server connections. PgFirst
    /// then prepares no named statement, keeps no session state (no <c>SET</c>, no session advisory lock, no temporary
    /// table), takes only transaction-scoped locks inside their transaction, and LISTENs only on
    /// <see cref="PgFirstOptions.ListenConnectionString"/> (a direct connection), else polls.
    /// </summary>
    Transaction = 1,

    /// <summary>
    /// A pooler in session mode (PgBouncer <c>pool_mode = session</c>): a server connection belongs to one client
    /// connection for the client's whole life, so PgFirst works as on a direct connection. Saying so keeps the health
    /// check from reporting the pooler it detects.
    /// </summary>
    Session = 2,
}
