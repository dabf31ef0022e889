namespace PgFirst.Redis.Internal;

// The Lua scripts of the Redis cache: the operations that need atomicity (a tagged write, a write that publishes a
// near-cache invalidation, a refresh, removals, a multi-key read) are one script each, so one round trip and atomic.
// The hot paths (a single-entry read, an untagged write without invalidation) are plain commands in RedisCacheBackend.
//
// Layout (see RedisCacheKeys): an entry is a HASH {prefix}c:{len}:{tenant}:{key} with the fields value, e (effective
// expiry, unix ms on the app clock, -1 = never), s (sliding window ms, -1 = none), a (absolute expiry unix ms, -1 =
// none) and t (its tags as "\0tag1\0tag2\0", or empty). Every tag of a tenant has a SET {prefix}t:{len}:{tenant}:{tag}
// whose members are the user keys. A tenant has no index set: removing a tenant scans for its entries' prefix, so no
// write pays for one. (Earlier releases kept an index SET {prefix}n:{len}:{tenant}; removing the tenant deletes it.)
//
// Expiry is decided by the "now" the caller passes (the injected TimeProvider), never by Redis's clock. Redis TTLs are
// only a backstop that frees abandoned keys: an entry's TTL is its remaining lifetime plus a margin, and a set's TTL is
// at least that of its longest-lived member, so a backstop never drops a live entry's membership.
//
// Every script takes ARGV[1] = entry prefix, ARGV[2] = tag-set prefix, ARGV[3] = the former index key (unused by the
// scripts; kept so the argument positions stay put); the rest follows.
internal static class RedisCacheScripts
{
    private const string Common = """
        local entry_prefix, tag_prefix = ARGV[1], ARGV[2]

        local function ms(n)
            return string.format('%.0f', n)
        end

        local function member_of(key)
            return string.sub(key, #entry_prefix + 1)
        end

        local function each_tag(tags)
            return string.gmatch(tags, '[^%z]+')
        end

        local function has_tag(tags, tag)
            return string.find(tags, '\0' .. tag .. '\0', 1, true) ~= nil
        end

        local function track(set, member, ttl)
            local existed = redis.call('EXISTS', set)
            redis.call('SADD', set, member)
            if ttl < 0 then
                redis.call('PERSIST', set)
            elseif existed == 0 then
                redis.call('PEXPIRE', set, ms(ttl))
            else
                redis.call('PEXPIRE', set, ms(ttl), 'GT')
            end
        end

        -- Members whose entry vanished by its backstop TTL (or was written again without the tag, by a plain write
        -- that does not look at the old tags) are dropped a few at a time on every write of the tag, which keeps each
        -- set within a small factor of its live members.
        local function prune(set, tag)
            for _, m in ipairs(redis.call('SRANDMEMBER', set, 3)) do
                local tags = redis.call('HGET', entry_prefix .. m, 't')
                if not tags or (tag and not has_tag(tags, tag)) then
                    redis.call('SREM', set, m)
                end
            end
        end

        local function drop(key)
            local member = member_of(key)
            for tag in each_tag(redis.call('HGET', key, 't') or '') do
                redis.call('SREM', tag_prefix .. tag, member)
            end
            return redis.call('DEL', key)
        end

        -- A write's near-cache invalidation, when the caller passed one: [channel, message] after the script's own
        -- arguments. Published inside the script, so it goes out if and only if the write happened.
        local function notify(base)
            if #ARGV >= base + 2 then
                redis.call('PUBLISH', ARGV[base + 1], ARGV[base + 2])
            end
        end

        local function slide(key, expires, now, margin, tags)
            local ttl = expires - now + margin
            redis.call('HSET', key, 'e', ms(expires))
            redis.call('PEXPIRE', key, ms(ttl))
            local member = member_of(key)
            for tag in each_tag(tags) do
                track(tag_prefix .. tag, member, ttl)
            end
        end

        -- One live entry's fields {value, e, s, a, t}, or nil for a missing or expired one. A sliding entry is extended
        -- only when that moves its expiry by at least min(granularity, window / 10), never beyond its absolute expiry:
        -- the same rule as the PostgreSQL statement; e is then the extended expiry.
        local function read_live(key, now, granularity, margin)
            local h = redis.call('HMGET', key, 'value', 'e', 's', 'a', 't')
            if not h[1] then
                return nil
            end
            local e = tonumber(h[2])
            if e ~= -1 and e <= now then
                return nil
            end
            local s = tonumber(h[3])
            if s ~= -1 then
                local a = tonumber(h[4])
                local n = now + s
                if a ~= -1 and a < n then
                    n = a
                end
                if n - e >= math.min(granularity, s / 10) then
                    slide(key, n, now, margin, h[5] or '')
                    h[2] = ms(n)
                end
            end
            return h
        end

        """;

    // KEYS: entries. ARGV[4] now, [5] refresh granularity ms, [6] backstop margin ms. Returns the values, false (nil)
    // for missing or expired entries. A sliding entry is extended only when that moves its expiry by at least
    // min(granularity, window / 10), never beyond its absolute expiry: the same rule as the PostgreSQL statement.
    private const string ReadText = Common + """
        local now, granularity, margin = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
        local values = {}
        for i, key in ipairs(KEYS) do
            local h = read_live(key, now, granularity, margin)
            values[i] = h and h[1] or false
        end
        return values
        """;

    // KEYS[1]: the entry. ARGV[4] now, [5] refresh granularity ms, [6] backstop margin ms. The read of the near cache:
    // as Read, but returns {value, e after this read, s, a, t} for a live entry, false otherwise.
    private const string ReadEntryText = Common + """
        local h = read_live(KEYS[1], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]))
        if not h then
            return false
        end
        return {h[1], h[2], h[3], h[4], h[5] or ''}
        """;

    // KEYS[1]: the entry. ARGV[4] now, [5] margin. Extends a live sliding entry unconditionally.
    private const string RefreshText = Common + """
        local now, margin = tonumber(ARGV[4]), tonumber(ARGV[5])
        local h = redis.call('HMGET', KEYS[1], 'e', 's', 'a', 't')
        if not h[1] then
            return 0
        end
        local e, s, a = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])
        if s == -1 or (e ~= -1 and e <= now) then
            return 0
        end
        local n = now + s
        if a ~= -1 and a < n then
            n = a
        end
        slide(KEYS[1], n, now, margin, h[4] or '')
        return 1
        """;

    // KEYS: entries. ARGV[4] now, [5] e, [6] s, [7] a, [8] margin, [9] tags field, [9 + i] the value of KEYS[i].
    // Replaces every field and the old tags of each entry.
    private const string SetText = Common + """
        local now, expires, margin, tags = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[8]), ARGV[9]
        local ttl = -1
        if expires ~= -1 then
            ttl = expires - now + margin
        end
        for i, key in ipairs(KEYS) do
            local member = member_of(key)
            for tag in each_tag(redis.call('HGET', key, 't') or '') do
                redis.call('SREM', tag_prefix .. tag, member)
            end
            redis.call('DEL', key)
            redis.call('HSET', key, 'value', ARGV[9 + i], 'e', ARGV[5], 's', ARGV[6], 'a', ARGV[7], 't', tags)
            if ttl >= 0 then
                redis.call('PEXPIRE', key, ms(ttl))
            end
            for tag in each_tag(tags) do
                track(tag_prefix .. tag, member, ttl)
                prune(tag_prefix .. tag, tag)
            end
        end
        notify(9 + #KEYS)
        return #KEYS
        """;

    // KEYS: entries. Returns how many existed (expired ones included).
    private const string RemoveText = Common + """
        local removed = 0
        for _, key in ipairs(KEYS) do
            removed = removed + drop(key)
        end
        notify(3)
        return removed
        """;

    // KEYS[1]: the tag set. ARGV[4] the tag. A member counts only if its entry still carries the tag: the entry may have
    // vanished by its backstop TTL and been written again without it.
    private const string RemoveByTagText = Common + """
        local tag = ARGV[4]
        local removed = 0
        for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
            local key = entry_prefix .. m
            local tags = redis.call('HGET', key, 't')
            if tags and has_tag(tags, tag) then
                removed = removed + drop(key)
            end
        end
        redis.call('DEL', KEYS[1])
        notify(4)
        return removed
        """;



    public static RedisScript Read { get; } = new(ReadText);

    public static RedisScript ReadEntry { get; } = new(ReadEntryText);

    public static RedisScript Refresh { get; } = new(RefreshText);

    public static RedisScript Set { get; } = new(SetText);

    public static RedisScript Remove { get; } = new(RemoveText);

    public static RedisScript RemoveByTag { get; } = new(RemoveByTagText);
}
