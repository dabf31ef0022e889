using BenchmarkDotNet.Attributes;

namespace PgFirst.Benchmarks;

/// <summary>
/// Bytes allocated per operation, by BenchmarkDotNet's memory diagnoser, for the load runner's own operations: each
/// module beside the raw Npgsql call doing the same (the same step the load scenarios time, at 1 caller). The load
/// runner runs it in process after its rounds (<c>load</c>, unless <c>--no-allocations</c>) and puts the figures in
/// the report; it can also be run alone (<c>--filter *AllocationBenchmarks*</c>) once the load runner's data exists.
/// </summary>
[MemoryDiagnoser]
public class AllocationBenchmarks
{
    private LoadRunner.AllocationStep? _step;
    private long _i;

    /// <summary>Gets the operations measured: "group: variant", as the report names them.</summary>
    public static IEnumerable<string> Operations => LoadRunner.AllocationOperations;

    /// <summary>Gets or sets the operation of this case.</summary>
    [ParamsSource(nameof(Operations))]
    public string Operation { get; set; } = "";

    /// <summary>Makes the step (its own data source or multiplexer, as in the load runner).</summary>
    [GlobalSetup]
    public async Task SetupAsync() => _step = await LoadRunner.CreateAllocationStepAsync(Operation);

    /// <summary>Disposes of the step.</summary>
    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        if (_step is not null)
        {
            await _step.DisposeAsync();
        }
    }

    /// <summary>One operation.</summary>
    [Benchmark]
    public Task Run() => _step!.Operation(_i++);
}
