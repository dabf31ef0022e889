using System.Diagnostics.Metrics;
using System.Globalization;
using Npgsql;
using PgFirst.Core;

namespace PgFirst.Benchmarks;

// The topology variants: a module through PgBouncer in transaction mode, and reads on the streaming standby.
internal static partial class LoadRunner
{
    // The bound the replica variants read within: the default of PgCacheOptions and PgSessionOptions.
    private static readonly TimeSpan ReplicaMaxLag = TimeSpan.FromSeconds(1);

    /// <summary>Where a variant's statements go.</summary>
    internal enum Topology
    {
        /// <summary>Straight to PostgreSQL (PGFIRST_POSTGRES).</summary>
        Direct,

        /// <summary>Through PgBouncer in pool_mode = transaction (PGFIRST_PGBOUNCER), PgFirst:Pooler = Transaction.</summary>
        PgBouncer,

        /// <summary>
        /// Straight to PostgreSQL but with PgFirst:Pooler = Transaction: what not preparing costs, without the pooler's hop.
        /// </summary>
        DirectUnprepared,

        /// <summary>Writes to the primary, reads on the streaming standby (PGFIRST_STANDBY) under BoundedStaleness.</summary>
        Standby,
    }

    // A fresh data source per step, and the PgFirst options the topology needs.
    private static (NpgsqlDataSource DataSource, PgFirstOptions Options) PostgresFor(Topology topology, string schema)
    {
        var options = new PgFirstOptions { SchemaName = schema };
        switch (topology)
        {
            case Topology.PgBouncer:
                options.Pooler = PgPoolerMode.Transaction;
                return (NpgsqlDataSource.Create(BenchmarkServers.PgBouncer), options);
            case Topology.DirectUnprepared:
                options.Pooler = PgPoolerMode.Transaction;
                return (NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(BenchmarkServers.Postgres) { NoResetOnClose = true }.ConnectionString), options);
            case Topology.Standby:
                options.Replicas.ConnectionString = BenchmarkServers.Standby;
                options.Replicas.SampleInterval = TimeSpan.FromMilliseconds(100);
                return (NpgsqlDataSource.Create(BenchmarkServers.Postgres), options);
            default:
                return (NpgsqlDataSource.Create(BenchmarkServers.Postgres), options);
        }
    }

    // A started router whose standby is sampled within the bound, so the step's reads can go there from the start.
    private static async Task<PgReplicaRouter> StartRouterAsync(NpgsqlDataSource primary, PgFirstOptions options)
    {
        var router = new PgReplicaRouter(primary, options, TimeProvider.System);
        router.Start();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (router.Status[0] is not { IsAvailable: true, Lag: { } lag } || lag > ReplicaMaxLag)
        {
            if (DateTime.UtcNow > deadline)
            {
                Progress($"warning: the standby is not within {ReplicaMaxLag.TotalSeconds:0.#} s of the primary ({router.Status[0].Error}); its reads go to the primary");
                break;
            }

            await Task.Delay(50);
        }

        return router;
    }

    // Counts where the routed reads of a step went (pgfirst.replica.reads), so the report can say how many the standby
    // served rather than assume it.
    private sealed class ReplicaReadCounter : IDisposable
    {
        private readonly MeterListener _listener = new();
        private long _replica;
        private long _primary;

        public ReplicaReadCounter()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == PgFirstMetricNames.CoreMeter && instrument.Name == PgFirstMetricNames.ReplicaReads)
                {
                    listener.EnableMeasurementEvents(instrument, this);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, tags, state) =>
            {
                foreach (var tag in tags)
                {
                    if (tag.Key == PgFirstMetricNames.ReplicaTargetTag)
                    {
                        if (tag.Value as string == "replica")
                        {
                            Interlocked.Add(ref ((ReplicaReadCounter)state!)._replica, value);
                        }
                        else
                        {
                            Interlocked.Add(ref ((ReplicaReadCounter)state!)._primary, value);
                        }
                    }
                }
            });
            _listener.Start();
        }

        public void Report(string what)
        {
            var replica = Interlocked.Read(ref _replica);
            var total = replica + Interlocked.Read(ref _primary);
            Progress(string.Create(CultureInfo.InvariantCulture, $"{what}: {replica:N0} of {total:N0} routed reads on the standby ({(total == 0 ? 0 : 100.0 * replica / total):0.#} %)"));
        }

        public void Dispose() => _listener.Dispose();
    }
}
