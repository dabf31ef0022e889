using System.Diagnostics;
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
    private const string AsynchronousCommit = "PgSessions, asynchronous commit";
    private const string ContendedGroup = "session contended, 32 callers on 4 sessions, a new key per request";
    private const int ContendedCallers = 32;
    private const int ContendedSessions = 4;

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

        await SettleAsync();
    }

    private static async Task WriteNewSessionAsync(ISession session)
    {
        await session.LoadAsync();
        session.Set("cart", Cart);
        await session.CommitAsync();
    }

    // PgSessions as an app gets it: AddPgFirst + AddPgSessions (+ AddRedis for the Redis twin), one provider per step.
    private static (ServiceProvider Provider, Func<ValueTask> Dispose) SessionServices(
        bool redis,
        Topology topology = Topology.Direct,
        PgSessionDurability durability = PgSessionDurability.Synchronous,
        string? schema = null,
        TimeSpan? touchInterval = null,
        bool nearCache = false)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        var (dataSource, options) = PostgresFor(topology, schema ?? Schema);
        services.AddSingleton(dataSource);
        var first = services.AddPgFirst(o =>
        {
            o.SchemaName = schema ?? Schema;
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
            o.IdleTimeout = touchInterval is null ? TimeSpan.FromHours(2) : TimeSpan.FromHours(24);
            o.TouchInterval = touchInterval ?? TouchInterval;
            o.CommitDurability = durability;
            o.NearCache.Enabled = nearCache;
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
            // Sessions first, as every session step: an UPDATE of an empty table is no baseline.
            await PrepareSessionsOnceAsync();
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

        // The statement PgSessions' commit wraps: a prepared call of session_commit at the version the row is at (its
        // common, unmerged path), with the request's one changed key, as the store sends it. Versions are tracked from
        // what each call returns, so the call is a write as sent, not a merge.
        public static async Task<Step> RawSessionCommitFunctionAsync(bool asynchronous)
        {
            await PrepareSessionsOnceAsync();
            var dataSource = NpgsqlDataSource.Create(BenchmarkServers.Postgres);
            var versions = new System.Collections.Concurrent.ConcurrentDictionary<long, long>();
            byte[] data;
            await using (var read = dataSource.CreateCommand($"SELECT data FROM \"{Schema}\".session LIMIT 1"))
            {
                data = (byte[])(await read.ExecuteScalarAsync())!;
            }

            await using (var read = dataSource.CreateCommand($"SELECT key_hash, version FROM \"{Schema}\".session"))
            await using (var reader = await read.ExecuteReaderAsync())
            {
                var byHash = new Dictionary<string, long>();
                while (await reader.ReadAsync())
                {
                    byHash[Convert.ToHexString(reader.GetFieldValue<byte[]>(0))] = reader.GetInt64(1);
                }

                for (var i = 0; i < Sessions; i++)
                {
                    versions[i] = byHash.GetValueOrDefault(Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(SessionKey(i)))), 1);
                }
            }

            var sql = $"SELECT status, version FROM \"{Schema}\".session_commit($1, $1, 'default', $2, $3, NULL, $4, $5, $6, $7, false, $8, $9, false, NULL, NULL, $10, $11)";
            var keys = new[] { Encoding.UTF8.GetBytes("cart") };
            var values = new byte[]?[] { Cart };
            return new Step(
                async i =>
                {
                    var session = i % Sessions;
                    await using var connection = await dataSource.OpenConnectionAsync();
                    await using var command = new NpgsqlCommand(sql, connection);
                    var p = command.Parameters;
                    p.Add(new NpgsqlParameter<byte[]> { TypedValue = SHA256.HashData(Encoding.UTF8.GetBytes(SessionKey(i))), NpgsqlDbType = NpgsqlDbType.Bytea });
                    p.Add(new NpgsqlParameter<long> { TypedValue = versions[session], NpgsqlDbType = NpgsqlDbType.Bigint });
                    p.Add(new NpgsqlParameter<byte[]> { TypedValue = data, NpgsqlDbType = NpgsqlDbType.Bytea });
                    p.Add(new NpgsqlParameter<TimeSpan> { TypedValue = TimeSpan.FromHours(2), NpgsqlDbType = NpgsqlDbType.Interval });
                    p.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = DateTimeOffset.UtcNow.AddHours(12), NpgsqlDbType = NpgsqlDbType.TimestampTz });
                    p.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = DateTimeOffset.UtcNow, NpgsqlDbType = NpgsqlDbType.TimestampTz });
                    p.Add(new NpgsqlParameter<TimeSpan> { TypedValue = TouchInterval, NpgsqlDbType = NpgsqlDbType.Interval });
                    p.Add(new NpgsqlParameter<byte[][]> { TypedValue = keys, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
                    p.Add(new NpgsqlParameter<byte[]?[]> { TypedValue = values, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
                    p.Add(new NpgsqlParameter<int> { TypedValue = 1024 * 1024, NpgsqlDbType = NpgsqlDbType.Integer });
                    p.Add(new NpgsqlParameter<bool> { TypedValue = asynchronous, NpgsqlDbType = NpgsqlDbType.Boolean });
                    await command.PrepareAsync();
                    await using var reader = await command.ExecuteReaderAsync();
                    if (await reader.ReadAsync() && !reader.IsDBNull(1))
                    {
                        versions[session] = reader.GetInt64(1);
                    }
                },
                dataSource.DisposeAsync);
        }

        // Writes back a stored session's own bytes, so the sessions stay readable for the scenarios after it.
        public static async Task<Step> RawSessionUpdateAsync()
        {
            await PrepareSessionsOnceAsync();
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

        public static async Task<Step> SessionRequestAsync(
            bool redis,
            bool modify,
            Topology topology = Topology.Direct,
            PgSessionDurability durability = PgSessionDurability.Synchronous,
            bool nearCache = false)
        {
            await PrepareSessionsOnceAsync();
            var (provider, dispose) = SessionServices(redis, topology, durability, nearCache: nearCache);
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

        private static Task RequestAsync(ISessionStore store, long i, bool modify) => RequestAsync(store, SessionKey(i), modify);

        private static async Task RequestAsync(ISessionStore store, string key, bool modify)
        {
            var session = store.Create(key, TimeSpan.FromHours(2), TimeSpan.FromMinutes(1), () => true, isNewSessionKey: false);
            await session.LoadAsync();
            if (!session.TryGetValue("cart", out var cart))
            {
                throw new InvalidOperationException($"Session {key} has no cart.");
            }

            if (modify)
            {
                cart[0]++;
                session.Set("cart", cart);
            }

            await session.CommitAsync();
        }
    }
    private enum ContendedStore
    {
        PostgreSql,
        PostgreSqlAsynchronous,
        Redis,
        Stock,
    }

    // The single-page-app pattern at full speed: 32 callers share 4 sessions (8 per session), and every request loads
    // its session, sets a key nobody else writes and commits. Afterwards every session is read back: a key a request
    // set and committed without an error but that is not there is a lost write. Commits/s are the ops/s; the loss
    // count goes to the report's findings, so a fast store that loses writes cannot hide it.
    private static async Task<Measurement> ContendedSessionsAsync(ContendedStore kind)
    {
        ISessionStore store;
        Func<ValueTask> dispose;
        if (kind == ContendedStore.Stock)
        {
            var cache = new RedisCache(new RedisCacheOptions { Configuration = BenchmarkServers.Redis, InstanceName = RedisPrefix + "stock-contended:" });
            store = new DistributedSessionStore(cache, NullLoggerFactory.Instance);
            dispose = () =>
            {
                cache.Dispose();
                return ValueTask.CompletedTask;
            };
        }
        else
        {
            var (provider, disposeProvider) = SessionServices(
                kind == ContendedStore.Redis,
                durability: kind == ContendedStore.PostgreSqlAsynchronous ? PgSessionDurability.Asynchronous : PgSessionDurability.Synchronous);
            provider.GetRequiredService<IHttpContextAccessor>().HttpContext = new DefaultHttpContext();
            store = provider.GetRequiredService<ISessionStore>();
            dispose = disposeProvider;
        }

        try
        {
            var run = Guid.NewGuid().ToString("N")[..8];
            var keys = Enumerable.Range(0, ContendedSessions).Select(s => new Guid(s + 1, 7, 7, Encoding.ASCII.GetBytes(run)).ToString()).ToArray();
            foreach (var key in keys)
            {
                var created = store.Create(key, TimeSpan.FromHours(2), TimeSpan.FromMinutes(1), () => true, isNewSessionKey: true);
                await created.LoadAsync();
                created.SetString("base", "0");
                await created.CommitAsync();
            }

            var written = new List<string>[ContendedCallers];
            var latencies = new List<long>[ContendedCallers];
            long failures = 0;
            var measuring = false;
            using var stop = new CancellationTokenSource();
            var workers = Enumerable.Range(0, ContendedCallers).Select(caller => Task.Run(async () =>
            {
                var mine = written[caller] = [];
                var times = latencies[caller] = new List<long>(10_000);
                var key = keys[caller % ContendedSessions];
                for (var n = 0; !stop.IsCancellationRequested; n++)
                {
                    var started = Stopwatch.GetTimestamp();
                    var name = string.Create(CultureInfo.InvariantCulture, $"c{caller}-{n}");
                    var session = store.Create(key, TimeSpan.FromHours(2), TimeSpan.FromMinutes(1), () => true, isNewSessionKey: false);
                    try
                    {
                        await session.LoadAsync();
                        session.SetString(name, "1");
                        await session.CommitAsync();
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        // A commit that reports its failure lost nothing silently; it is not counted as written.
                        Interlocked.Increment(ref failures);
                        continue;
                    }

                    mine.Add(name);
                    if (Volatile.Read(ref measuring))
                    {
                        times.Add(Stopwatch.GetTimestamp() - started);
                    }
                }
            })).ToArray();

            await Task.Delay(StepWarmUp);
            Volatile.Write(ref measuring, true);
            var begin = Stopwatch.GetTimestamp();
            await Task.Delay(StepDuration);
            Volatile.Write(ref measuring, false);
            var elapsed = Stopwatch.GetElapsedTime(begin);
            await stop.CancelAsync();
            await Task.WhenAll(workers);

            var lost = 0;
            var total = 0;
            for (var s = 0; s < ContendedSessions; s++)
            {
                var session = store.Create(keys[s], TimeSpan.FromHours(2), TimeSpan.FromMinutes(1), () => true, isNewSessionKey: false);
                await session.LoadAsync();
                var stored = session.Keys.ToHashSet(StringComparer.Ordinal);
                for (var caller = s; caller < ContendedCallers; caller += ContendedSessions)
                {
                    total += written[caller].Count;
                    lost += written[caller].Count(k => !stored.Contains(k));
                }
            }

            var variant = kind switch
            {
                ContendedStore.PostgreSql => "PgSessions",
                ContendedStore.PostgreSqlAsynchronous => AsynchronousCommit,
                ContendedStore.Redis => "Redis twin",
                _ => "stock DistributedSession + RedisCache",
            };
            Findings[$"{ContendedGroup}: {variant}"] = string.Create(
                CultureInfo.InvariantCulture,
                $"{lost:N0} of {total:N0} committed keys lost; {Interlocked.Read(ref failures):N0} commits failed with an error");
            Progress(Findings[$"{ContendedGroup}: {variant}"]);
            var all = latencies.SelectMany(l => l).Order().ToArray();
            return new(ContendedCallers, all.Length / elapsed.TotalSeconds, Percentile(all, 0.50), Percentile(all, 0.95), Percentile(all, 0.99));
        }
        finally
        {
            await dispose();
        }
    }
}