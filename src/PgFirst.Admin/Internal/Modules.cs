using PgCache;
using PgFirst.Core;
using PgQueue;
using PgRateLimit;
using PgSessions;

namespace PgFirst.Admin.Internal;

// The four modules' schema scripts, as the libraries embed them.
internal static class Modules
{
    public static IReadOnlyList<PgSchemaModule> All(bool cacheLogged = false, bool rateLimitLogged = false) =>
    [
        PgDistributedCache.SchemaModuleFor(cacheLogged ? PgCacheDurability.Logged : PgCacheDurability.Unlogged),
        PostgresSessionBackend.SchemaModule,
        PostgresRateLimitStore.SchemaModuleFor(rateLimitLogged ? PgRateLimitDurability.Logged : PgRateLimitDurability.Unlogged),
        PostgresJobQueueBackend.SchemaModule,
    ];
}
