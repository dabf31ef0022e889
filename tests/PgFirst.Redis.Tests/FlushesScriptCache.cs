namespace PgFirst.Redis.Tests;

// Tests that flush the server's script cache (SCRIPT FLUSH) run alone, after the parallel ones: a flush in the middle
// of another test would add a NOSCRIPT retry to the round trips that test counts.
[CollectionDefinition(Name, DisableParallelization = true)]
public static class FlushesScriptCache
{
    public const string Name = "Flushes the Redis script cache";
}
