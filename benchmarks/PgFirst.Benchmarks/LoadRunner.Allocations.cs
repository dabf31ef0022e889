using System.Buffers;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.NoEmit;
using PgFirst.Benchmarks.Report;

namespace PgFirst.Benchmarks;

internal static partial class LoadRunner
{
    private const string BufferPath = "PgCache, buffer path (TryGetAsync into a reused buffer)";

    /// <summary>An operation of the allocation suite, with what disposes of it.</summary>
    internal sealed class AllocationStep(Func<long, Task> operation, Func<ValueTask> dispose) : IAsyncDisposable
    {
        public Func<long, Task> Operation { get; } = operation;

        public ValueTask DisposeAsync() => dispose();
    }

    // Each module operation beside the raw call doing the same SQL, named as the load scenarios are, plus the cache's
    // buffer path, which no load scenario times.
    internal static IReadOnlyList<string> AllocationOperations =>
    [
        "cache get 1 KiB: raw prepared SELECT",
        "cache get 1 KiB: PgCache",
        $"cache get 1 KiB: {BufferPath}",
        "cache get 1 KiB: Redis twin",
        $"cache get 1 KiB: {StockRedisCache}",
        "cache get-many 100 × 1 KiB: raw prepared = ANY($1)",
        "cache get-many 100 × 1 KiB: PgCache",
        "cache set 1 KiB: raw prepared upsert",
        "cache set 1 KiB: PgCache",
        "cache set 1 KiB: Redis twin",
        $"cache set 1 KiB: {StockRedisCache}",
        "rate limit, 1,000 partitions: raw prepared call",
        "rate limit, 1,000 partitions: PgRateLimit",
        "session read-only request: raw prepared SELECT",
        "session read-only request: PgSessions",
    ];

    internal static async Task<AllocationStep> CreateAllocationStepAsync(string operation)
    {
        if (operation == $"cache get 1 KiB: {BufferPath}")
        {
            var (cache, dispose) = await Step.CacheForAllocationsAsync();
            var buffer = new ArrayBufferWriter<byte>(2048);
            return new AllocationStep(
                async i =>
                {
                    buffer.ResetWrittenCount();
                    await cache.TryGetAsync(Key(i), buffer);
                },
                dispose);
        }

        var scenario = Scenarios().Single(s => s.Name == operation);
        var step = await scenario.Create!();
        return new AllocationStep(step.Operation, step.DisposeAsync);
    }

    // BenchmarkDotNet in this process (no separate build: the registry copy may lack what a generated project needs),
    // a short job, the memory diagnoser; the figures go into the report.
    private static List<AllocationResult> MeasureAllocations()
    {
        Progress($"allocations: BenchmarkDotNet's memory diagnoser on {AllocationOperations.Count} operations, in process (about a minute)");
        // A short job for a real run; a dry one (one invocation) for a smoke run of a second per step.
        var job = (StepDuration.TotalSeconds < 2 ? Job.Dry : Job.ShortRun).WithToolchain(InProcessNoEmitToolchain.Instance).WithId("in-process");
        var config = ManualConfig.CreateEmpty()
            .AddJob(job)
            .AddDiagnoser(MemoryDiagnoser.Default)
            .AddLogger(NullLogger.Instance)
            .AddColumnProvider(DefaultColumnProviders.Instance)
            .WithOptions(ConfigOptions.DisableOptimizationsValidator | ConfigOptions.DisableLogFile);
        var summary = BenchmarkRunner.Run<AllocationBenchmarks>(config);
        var results = new List<AllocationResult>();
        foreach (var report in summary.Reports)
        {
            var name = (string)report.BenchmarkCase.Parameters["Operation"];
            var split = name.IndexOf(": ", StringComparison.Ordinal);
            var bytes = report.GcStats.GetBytesAllocatedPerOperation(report.BenchmarkCase);
            if (!report.Success || bytes is null || report.ResultStatistics is null)
            {
                Progress($"warning: the allocation case {name} failed and is left out of the report");
                continue;
            }

            results.Add(new AllocationResult(name[..split], name[(split + 2)..], bytes.Value, report.ResultStatistics.Mean / 1_000));
        }

        // In the suite's order (BenchmarkDotNet sorts its cases by parameter value).
        var order = AllocationOperations.ToList();
        return results.OrderBy(r => order.IndexOf($"{r.Group}: {r.Variant}")).ToList();
    }
}
