namespace PgFirst.Redis.Internal;

// The Lua script of the Redis rate-limit store: one decision is one script, so one round trip and atomic.
//
// Layout: one HASH per (limiter, partition), {prefix}rl:{len}:{limiter}:{partition} (see RedisRateLimitStore.Key),
// with the fields w (the start of the window it counts, unix µs on the Redis clock) and n (the window's count). The
// hash is reused from window to window, as the PostgreSQL row is, and expires at its window's end plus a margin.
internal static class RedisRateLimitScripts
{
    // KEYS[1]: the counter. ARGV[1] permits, [2] permit limit, [3] window µs, [4] count rejected ('1' or '0'),
    // [5] expiry margin ms. Returns {acquired (1 or 0), the window's count after the decision, µs left in the window}.
    //
    // The same decision as {schema}.ratelimit_acquire: windows are aligned to the epoch on the server's clock (TIME,
    // so every app instance agrees); a counter of another window starts again from the permits asked for; within the
    // window a request counts only if it fits, unless rejected requests count too. Integers stay below 2^53 (now in µs
    // is about 1.8e15), so Lua's doubles compute them exactly; they are formatted with %.0f, never in exponent form.
    private const string AcquireText = """
        local permits, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
        local count_rejected, margin = ARGV[4] == '1', tonumber(ARGV[5])
        local time = redis.call('TIME')
        local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
        local start = now - now % window
        local finish = start + window
        local stored = redis.call('HMGET', KEYS[1], 'w', 'n')
        local count
        if stored[1] and tonumber(stored[1]) == start then
            count = tonumber(stored[2])
            if not count_rejected and count + permits > limit then
                return {0, count, finish - now}
            end
            count = redis.call('HINCRBY', KEYS[1], 'n', permits)
        else
            count = permits
            redis.call('HSET', KEYS[1], 'w', string.format('%.0f', start), 'n', string.format('%.0f', count))
            redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.ceil(finish / 1000) + margin))
        end
        if count <= limit then
            return {1, count, finish - now}
        end
        return {0, count, finish - now}
        """;

    // KEYS[1]: the counter. ARGV[1] permit limit, [2] window µs, [3] count rejected ('1' or '0'), [4] expiry margin
    // ms, then the permits of each decision in arrival order. Returns {the window's count after the last decision, µs
    // left in the window, then 1 or 0 per decision}: the decisions Acquire would make one after the other.
    private const string AcquireBatchText = """
        local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
        local count_rejected, margin = ARGV[3] == '1', tonumber(ARGV[4])
        local time = redis.call('TIME')
        local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
        local start = now - now % window
        local finish = start + window
        local stored = redis.call('HMGET', KEYS[1], 'w', 'n')
        local count = 0
        local fresh = not (stored[1] and tonumber(stored[1]) == start)
        if not fresh then
            count = tonumber(stored[2])
        end
        local result = {0, finish - now}
        for i = 5, #ARGV do
            local permits = tonumber(ARGV[i])
            if count + permits <= limit then
                count = count + permits
                result[#result + 1] = 1
            else
                if count_rejected then
                    count = count + permits
                end
                result[#result + 1] = 0
            end
        end
        result[1] = count
        redis.call('HSET', KEYS[1], 'w', string.format('%.0f', start), 'n', string.format('%.0f', count))
        if fresh then
            redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.ceil(finish / 1000) + margin))
        end
        return result
        """;

    public static RedisScript Acquire { get; } = new(AcquireText);

    public static RedisScript AcquireBatch { get; } = new(AcquireBatchText);
}
