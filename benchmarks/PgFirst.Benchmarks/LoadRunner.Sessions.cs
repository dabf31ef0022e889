using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Session;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;
using PgFirst.Core;
using PgSessions;

namespace PgFirst.Benchmarks;

// Session scenarios. A "request" is what SessionMiddleware asks of the store for one request carrying a cookie:
// Create, LoadAsync, read (and for a modifying request, write) the cart, CommitAsync. The cookie's Data Protection
// work is the middleware's and the same for every store, so it is left out.
internal static partial class LoadRunner
{
    private static int Sessions = 10_000;

    // The session scenarios run within this interval of the sessions' creation, so no load in them writes a touch: the
    // figures are of the steady state between touches. A touch (one UPDATE inside the same round trip) happens once per
    // session per interval; at a 5-minute interval and a session read every few seconds that is well under 1 % of loads.
    private static readonly TimeSpan TouchInterval = TimeSpan.FromMinutes(5);
    private static bool _sessionsPrepared;
    private static readonly byte[] Cart = new byte[1024];

    private static string SessionKey(long i) => new Guid((int)(i % Sessions), 0, 0, new byte[8]).ToString();

    // Sessions are made just before the first session scenario, so every session scenario runs inside one touch interval.
    private static async Task PrepareSessionsOnceAsync()
    {
        if (!_sessionsPrepared)
        {
            _sessionsPrepared = true;
            await PrepareSessionsAsync();
        }
    }

    private static async Task PrepareSessionsAsync()
    {
        foreach (var (provider, dispose) in new[] { SessionServices(redis: false), SessionServices(redis: true) })
        {
            var store = provider.GetRequiredService<ISessionStore>();
            for (var i = 0; i < Sessions; i++)
            {
                // A new session writes its cookie, so it needs a request.
                provider.GetRequiredService<IHttpContextAccessor>().HttpContext = new DefaultHttpContext();
                await WriteNewSessionAsync(store.Create(SessionKey(i), TimeSpan.FromHours(2), TimeSpan.FromMinutes(1), () => true, isNewSessionKey: true));
            }

            await dispose();
        }

        using var cache = new RedisCache(new RedisCacheOptions { Configuration = BenchmarkServers.Redis, InstanceName = RedisPrefix + "stock:" });
        var stock = new DistributedSessionStore(cache, NullLoggerFactory.Instance);
        for (var i = 0; i < Sessions; i++)
        {
            await WriteNewSessionAsync(stock.Create(SessionKey(i), TimeSpan.FromHours(2), TimeSpan.FromMinutes(1), () => true, isNewSessionKey: true));
        }
    }

    private static async Task WriteNewSessionAsync(ISession session)
    {
        await session.LoadAsync();
        session.Set("cart", Cart);
        await session.CommitAsync();
    }

    // PgSessions as an app gets it: AddPgFirst + AddPgSessions (+ AddRedis for the Redis twin), one provider per step.
    private static (ServiceProvider Provider, Func<ValueTask> Dispose) SessionServices(bool redis, Topology topology = Topology.Direct)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        var (dataSource, options) = PostgresFor(topology, Schema);
        services.AddSingleton(dataSource);
        var first = services.AddPgFirst(o =>
        {
            o.SchemaName = Schema;
            o.Pooler = options.Pooler;
            o.Replicas.ConnectionString = options.Replicas.ConnectionString;
            o.Replicas.SampleInterval = options.Replicas.SampleInterval;
            o.Backend = redis ? PgFirstBackend.Redis : PgFirstBackend.PostgreSql;
            o.Maintenance.Enabled = false;
        });
        if (redis)
        {
            first.AddRedis(o =>
            {
                o.Configuration = BenchmarkServers.Redis;
                o.KeyPrefix = RedisPrefix + "sessions:";
            });
        }

        services.AddPgSessions(o =>
        {
            o.IdleTimeout = TimeSpan.FromHours(2);
            o.TouchInterval = TouchInterval;
            if (topology == Topology.Standby)
            {
                o.ReadConsistency = PgReadConsistency.BoundedStaleness;
                o.MaxReplicaLag = ReplicaMaxLag;
            }
        });
        var provider = services.BuildServiceProvider();
        return (provider, async () =>
        {
            await provider.DisposeAsync();
            await dataSource.DisposeAsync();
        });
    }

    private sealed partial class Step
    {
        public static async Task<Step> RawSessionSelectAsync()
        {
            await PrepareSessionsOnceAsync();
            return await RawSessionSelectCoreAsync();
        }

        private static Task<Step> RawSessionSelectCoreAsync() => Raw(
            $"SELECT data FROM \"{Schema}\".session WHERE key_hash = $1 AND tenant_id = $2 AND expires_at > $3",
            (p, i) =>
            {
                p.Add(new NpgsqlParameter<byte[]> { TypedValue = SHA256.HashData(Encoding.UTF8.GetBytes(SessionKey(i))), NpgsqlDbType = NpgsqlDbType.Bytea });
                p.Add(new NpgsqlParameter<string> { TypedValue = "default", NpgsqlDbType = NpgsqlDbType.Text });
                p.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = DateTimeOffset.UtcNow, NpgsqlDbType = NpgsqlDbType.TimestampTz });
            });

        public static async Task<Step> RawSessionLoadFunctionAsync()
        {
            await PrepareSessionsOnceAsync();
            return await Raw($"SELECT {PgSessionsColumns} FROM \"{Schema}\".session_load($1, $2, $3, $4)", BindLoad);
        }

        private const string PgSessionsColumns = "key_hash, session_id, tenant_id, user_id, created_at, last_seen_at, idle_timeout, absolute_expires_at, version, data, client_ip, user_agent";

        private static void BindLoad(NpgsqlParameterCollection p, long i)
        {
            p.Add(new NpgsqlParameter<byte[]> { TypedValue = SHA256.HashData(Encoding.UTF8.GetBytes(SessionKey(i))), NpgsqlDbType = NpgsqlDbType.Bytea });
            p.Add(new NpgsqlParameter<string> { TypedValue = "default", NpgsqlDbType = NpgsqlDbType.Text });
            p.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = DateTimeOffset.UtcNow, NpgsqlDbType = NpgsqlDbType.TimestampTz });
            p.Add(new NpgsqlParameter<TimeSpan> { TypedValue = TouchInterval, NpgsqlDbType = NpgsqlDbType.Interval });
        }

        // PgSessions' own commit statement, prepared and called raw: what the store's write costs without the store.
        public static async Task<Step> RawSessionCommitStatementAsync()
        {
            await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
            await using var read = dataSource.CreateCommand($"SELECT data FROM \"{Schema}\".session LIMIT 1");
            var data = (byte[])(await read.ExecuteScalarAsync())!;
            return await Raw(
                $"""
                UPDATE "{Schema}".session
                SET key_hash = $2, data = $5, user_id = $6, idle_timeout = $7, absolute_expires_at = $8,
                    last_seen_at = CASE WHEN $9 - last_seen_at >= $10 THEN $9 ELSE last_seen_at END,
                    expires_at = LEAST(CASE WHEN $9 - last_seen_at >= $10 THEN $9 ELSE last_seen_at END + $7, $8),
                    version = version + 1
                WHERE key_hash = $1 AND tenant_id = $3 AND version >= $4 AND expires_at > $9
                RETURNING version
                """,
                (p, i) =>
                {
                    var hash = SHA256.HashData(Encoding.UTF8.GetBytes(SessionKey(i)));
                    p.Add(new NpgsqlParameter<byte[]> { TypedValue = hash, NpgsqlDbType = NpgsqlDbType.Bytea });
                    p.Add(new NpgsqlParameter<byte[]> { TypedValue = hash, NpgsqlDbType = NpgsqlDbType.Bytea });
                    p.Add(new NpgsqlParameter<string> { TypedValue = "default", NpgsqlDbType = NpgsqlDbType.Text });
                    p.Add(new NpgsqlParameter<long> { TypedValue = 0, NpgsqlDbType = NpgsqlDbType.Bigint });
                    p.Add(new NpgsqlParameter<byte[]> { TypedValue = data, NpgsqlDbType = NpgsqlDbType.Bytea });
                    p.Add(new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
                    p.Add(new NpgsqlParameter<TimeSpan> { TypedValue = TimeSpan.FromHours(2), NpgsqlDbType = NpgsqlDbType.Interval });
                    p.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = DateTimeOffset.UtcNow.AddHours(12), NpgsqlDbType = NpgsqlDbType.TimestampTz });
                    p.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = DateTimeOffset.UtcNow, NpgsqlDbType = NpgsqlDbType.TimestampTz });
                    p.Add(new NpgsqlParameter<TimeSpan> { TypedValue = TimeSpan.FromMinutes(1), NpgsqlDbType = NpgsqlDbType.Interval });
                });
        }

        // Writes back a stored session's own bytes, so the sessions stay readable for the scenarios after it.
        public static async Task<Step> RawSessionUpdateAsync()
        {
            await using var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
            await using var read = dataSource.CreateCommand($"SELECT data FROM \"{Schema}\".session LIMIT 1");
            var data = (byte[])(await read.ExecuteScalarAsync())!;
            return await Raw(
                $"UPDATE \"{Schema}\".session SET data = $2, version = version + 1 WHERE key_hash = $1",
                (p, i) =>
                {
                    p.Add(new NpgsqlParameter<byte[]> { TypedValue = SHA256.HashData(Encoding.UTF8.GetBytes(SessionKey(i))), NpgsqlDbType = NpgsqlDbType.Bytea });
                    p.Add(new NpgsqlParameter<byte[]> { TypedValue = data, NpgsqlDbType = NpgsqlDbType.Bytea });
                });
        }

        public static async Task<Step> SessionRequestAsync(bool redis, bool modify, Topology topology = Topology.Direct)
        {
            await PrepareSessionsOnceAsync();
            var (provider, dispose) = SessionServices(redis, topology);
            var store = provider.GetRequiredService<ISessionStore>();
            if (topology != Topology.Standby)
            {
                return new Step(i => RequestAsync(store, i, modify), dispose);
            }

            // No host runs here to start the router: start it, and count where the loads went.
            var router = provider.GetRequiredService<PgReplicaRouter>();
            await router.SampleAsync();
            router.Start();
            var reads = new ReplicaReadCounter();
            return new Step(i => RequestAsync(store, i, modify), async () =>
            {
                reads.Report("session loads");
                reads.Dispose();
                await dispose();
            });
        }

        public static async Task<Step> StockSessionRequestAsync(bool modify)
        {
            await PrepareSessionsOnceAsync();
            var cache = new RedisCache(new RedisCacheOptions { Configuration = BenchmarkServers.Redis, InstanceName = RedisPrefix + "stock:" });
            var store = new DistributedSessionStore(cache, NullLoggerFactory.Instance);
            return new Step(
                i => RequestAsync(store, i, modify),
                () =>
                {
                    cache.Dispose();
                    return ValueTask.CompletedTask;
                });
        }

        private static async Task RequestAsync(ISessionStore store, long i, bool modify)
        {
            var session = store.Create(SessionKey(i), TimeSpan.FromHours(2), TimeSpan.FromMinutes(1), () => true, isNewSessionKey: false);
            await session.LoadAsync();
            if (!session.TryGetValue("cart", out var cart))
            {
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture, $"Session {i % Sessions} has no cart."));
            }

            if (modify)
            {
                cart[0]++;
                session.Set("cart", cart);
            }

            await session.CommitAsync();
        }
    }
}
