using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Running;
using PgFirst.Benchmarks;

// Run with the servers of ./pgfirst: eval "$(./pgfirst env)" && dotnet run -c Release --project benchmarks/PgFirst.Benchmarks
//   -- --filter '*'              BenchmarkDotNet suites (1 caller, allocations, ratios to raw Npgsql and Redis)
//   -- load [--seconds N]        the concurrent load runner (1, 8 and 32 callers)
if (args.Length > 0 && args[0] == "load")
{
    return await LoadRunner.RunAsync(args);
}

var config = ManualConfig.Create(DefaultConfig.Instance)
    .AddDiagnoser(MemoryDiagnoser.Default)
    .AddExporter(MarkdownExporter.GitHub);

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
return 0;
