using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace PgFirst.Redis.Internal;

// A script and its SHA-1, so the hot path sends EVALSHA and the text (EVAL, which also caches it) only when the server
// does not know the script, e.g. after a restart or SCRIPT FLUSH.
internal sealed class RedisScript(string text)
{
    public string Text { get; } = text;

#pragma warning disable CA5350 // SHA-1 is how Redis names scripts (EVALSHA), not a security measure.
    public byte[] Hash { get; } = SHA1.HashData(Encoding.UTF8.GetBytes(text));
#pragma warning restore CA5350

    public RedisResult Evaluate(IDatabase database, RedisKey[] keys, RedisValue[] arguments)
    {
        try
        {
            return database.ScriptEvaluate(Hash, keys, arguments);
        }
        catch (RedisServerException ex) when (IsNoScript(ex))
        {
            return database.ScriptEvaluate(Text, keys, arguments);
        }
    }

    // Bounded by the caller's token and, when given, by a timeout of its own.
    public async Task<RedisResult> EvaluateAsync(IDatabase database, RedisKey[] keys, RedisValue[] arguments, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        try
        {
            return await Wait(database.ScriptEvaluateAsync(Hash, keys, arguments), timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (IsNoScript(ex))
        {
            return await Wait(database.ScriptEvaluateAsync(Text, keys, arguments), timeout, cancellationToken).ConfigureAwait(false);
        }
    }

    private static Task<RedisResult> Wait(Task<RedisResult> task, TimeSpan? timeout, CancellationToken cancellationToken) =>
        timeout is { } limit ? task.WaitAsync(limit, cancellationToken) : task.WaitAsync(cancellationToken);

    private static bool IsNoScript(RedisServerException ex) => ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal);
}
