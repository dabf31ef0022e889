using System.Globalization;
using StackExchange.Redis;

namespace PgFirst.Redis.Internal;

// The key names of one tenant's cache entries. The tenant's length comes first, so tenant "a" with key "b:k" and
// tenant "a:b" with key "k" never share a name.
internal sealed class RedisCacheKeys
{
    public RedisCacheKeys(string keyPrefix, string tenantId)
    {
        var scope = tenantId.Length.ToString(CultureInfo.InvariantCulture) + ":" + tenantId;
        EntryPrefix = keyPrefix + "c:" + scope + ":";
        TagPrefix = keyPrefix + "t:" + scope + ":";
        Index = keyPrefix + "n:" + scope;
    }

    public string EntryPrefix { get; }

    public string TagPrefix { get; }

    public string Index { get; }

    public RedisKey Entry(string key) => EntryPrefix + key;

    public RedisKey Tag(string tag) => TagPrefix + tag;

    // The arguments every script starts with.
    public RedisValue[] Arguments(int extra)
    {
        var arguments = new RedisValue[3 + extra];
        arguments[0] = EntryPrefix;
        arguments[1] = TagPrefix;
        arguments[2] = Index;
        return arguments;
    }
}
