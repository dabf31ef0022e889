using System.Text;
using Microsoft.Extensions.Caching.Distributed;

namespace PgCache.Internal;

// Argument rules shared by both backends, so bad input fails the same way everywhere and before any I/O.
internal static class CacheArguments
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static void ValidateKey(string key, string paramName = "key")
    {
        ArgumentNullException.ThrowIfNull(key, paramName);
        if (key.Length == 0)
        {
            throw new ArgumentException("A cache key cannot be empty.", paramName);
        }

        if (key.Length > PgCacheOptions.MaxKeyLength)
        {
            throw new ArgumentException($"A cache key is at most {PgCacheOptions.MaxKeyLength} characters; this one has {key.Length}.", paramName);
        }

        ValidateText(key, "cache key", paramName);
    }

    public static void ValidateTag(string tag, string paramName = "tag")
    {
        ArgumentNullException.ThrowIfNull(tag, paramName);
        if (tag.Length == 0 || tag.Length > PgCacheOptions.MaxTagLength)
        {
            throw new ArgumentException($"A tag is 1 to {PgCacheOptions.MaxTagLength} characters; this one has {tag.Length}.", paramName);
        }

        ValidateText(tag, "tag", paramName);
    }

    public static string[] ValidateKeys(IEnumerable<string> keys, string paramName = "keys")
    {
        ArgumentNullException.ThrowIfNull(keys, paramName);
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in keys)
        {
            ValidateKey(key, paramName);
            set.Add(key);
        }

        return [.. set];
    }

    // Last value wins for a repeated key; validated in full before anything is written.
    public static (string[] Keys, byte[][] Values) ValidateEntries(IEnumerable<KeyValuePair<string, byte[]>> entries, string paramName = "entries")
    {
        ArgumentNullException.ThrowIfNull(entries, paramName);
        var map = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var (key, value) in entries)
        {
            ValidateKey(key, paramName);
            if (value is null)
            {
                throw new ArgumentNullException(paramName, "A cache value cannot be null; use an empty array for an empty value.");
            }

            map[key] = value;
        }

        return ([.. map.Keys], [.. map.Values]);
    }

    public static void ValidateValue(byte[] value, string paramName = "value")
    {
        if (value is null)
        {
            throw new ArgumentNullException(paramName, "A cache value cannot be null; use an empty array for an empty value.");
        }
    }

    public static string[]? ValidateTags(DistributedCacheEntryOptions options)
    {
        if (options is not PgCacheEntryOptions { Tags.Count: > 0 } tagged)
        {
            return null;
        }

        var tags = new HashSet<string>(StringComparer.Ordinal);
        foreach (var tag in tagged.Tags)
        {
            ValidateTag(tag, nameof(options));
            tags.Add(tag);
        }

        return [.. tags];
    }

    private static void ValidateText(string text, string what, string paramName)
    {
        if (text.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"A {what} cannot contain the character U+0000.", paramName);
        }

        try
        {
            _ = StrictUtf8.GetByteCount(text);
        }
        catch (EncoderFallbackException)
        {
            throw new ArgumentException($"A {what} must be valid UTF-16 (it holds an unpaired surrogate).", paramName);
        }
    }
}
