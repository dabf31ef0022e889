using System.Security.Cryptography;
using System.Text;

namespace PgFirst.Redis.Internal;

// A script and its SHA-1, so the hot path sends EVALSHA and the text only after the server lost its script cache.
internal sealed class RedisScript(string text)
{
    public string Text { get; } = text;

#pragma warning disable CA5350 // SHA-1 is how Redis names scripts (EVALSHA), not a security measure.
    public byte[] Hash { get; } = SHA1.HashData(Encoding.UTF8.GetBytes(text));
#pragma warning restore CA5350
}
