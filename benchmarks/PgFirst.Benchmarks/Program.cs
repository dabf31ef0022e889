using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Running;

// Run with the servers of ./pgfirst: eval "$(./pgfirst env)" && dotnet run -c Release --project benchmarks/PgFirst.Benchmarks
var config = ManualConfig.Create(DefaultConfig.Instance)
    .AddDiagnoser(MemoryDiagnoser.Default)
    .AddExporter(MarkdownExporter.GitHub);

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
