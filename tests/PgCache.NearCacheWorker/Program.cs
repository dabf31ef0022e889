using System.Globalization;
using System.Text;
using Npgsql;
using PgCache;
using PgFirst.Core;

// Reads commands on standard input, one per line, and answers each with one line:
//   get <key>  ->  value <text> | miss | error <message>
//   state      ->  state serving=<bool> listening=<bool> count=<n>
// Exits when standard input ends, so it never outlives the test.
var connectionString = Environment.GetEnvironmentVariable("NEARCACHE_CONNECTION") ?? throw new InvalidOperationException("NEARCACHE_CONNECTION is not set.");
var schema = Environment.GetEnvironmentVariable("NEARCACHE_SCHEMA") ?? throw new InvalidOperationException("NEARCACHE_SCHEMA is not set.");
var bound = TimeSpan.Parse(Environment.GetEnvironmentVariable("NEARCACHE_MAX_STALENESS") ?? "00:00:01", CultureInfo.InvariantCulture);

await using var dataSource = NpgsqlDataSource.Create(connectionString);
var options = new PgCacheOptions { OperationTimeout = TimeSpan.FromSeconds(2) };
options.NearCache.Enabled = true;
options.NearCache.MaxStaleness = bound;
await using var cache = new PgDistributedCache(dataSource, new PgFirstOptions { SchemaName = schema }, options, new PgTenantContext("default"), TimeProvider.System);
await cache.NearCache!.WaitUntilServingAsync().WaitAsync(TimeSpan.FromSeconds(30));
Console.Out.WriteLine("ready");
Console.Out.Flush();

while (Console.In.ReadLine() is { } line)
{
    string answer;
    try
    {
        answer = line.Split(' ', 2) switch
        {
            ["get", var key] => await cache.GetAsync(key) is { } value ? "value " + Encoding.UTF8.GetString(value) : "miss",
            ["state"] => $"state serving={cache.NearCache.IsServing} listening={cache.NearCache.IsListening} count={cache.NearCache.Count}",
            _ => "error unknown command",
        };
    }
    catch (Exception ex) when (ex is PgCacheException or PgFirstSchemaException)
    {
        answer = "error " + ex.Message.ReplaceLineEndings(" ");
    }

    Console.Out.WriteLine(answer);
    Console.Out.Flush();
}
