namespace PgFirst.Redis.Internal;

// The Lua scripts of the Redis session backend: every operation is one script, so it is one round trip and atomic.
//
// Layout, under one tenant's scope {prefix}s:{tenant length}:{tenant}: (see RedisSessionBackend.Scope):
//   k:{key hash, 64 lowercase hex}  HASH    the session: id (session id, 32 hex), user (absent when none), v (version),
//                                           data, created, seen (last seen), idle (idle timeout), abs (absolute expiry),
//                                           ip and ua (absent when none). Times are unix µs on the app clock, spans µs.
//   i:{session id, 32 hex}          STRING  the key hash (hex) of that session, to revoke it by id.
//   u:{user id}                     SET     the key hashes (hex) of the sessions bound to that user.
// The user id comes last in its key, and the tenant is length-prefixed, so no two (tenant, user) pairs share a key.
//
// Liveness is decided by the "now" the caller passes (the app's TimeProvider), never by Redis's clock. Redis TTLs only
// free dead sessions: a session and its id key live for the session's remaining lifetime plus a margin (relative
// PEXPIRE, so the two clocks need not agree), refreshed on every touch and write; a user set lives at least as long as
// its longest-lived member. Members whose session vanished or moved to another user are pruned as they are met.
//
// Times stay below 2^53 µs unless a caller passes dates near year 9999; Lua's doubles compare those well enough, and
// the stored strings, never recomputed numbers, are returned, so values round-trip exactly. Optional strings are passed
// as '' (none) or '+' followed by the value.
//
// Every script takes ARGV[1] = the tenant scope; the session key KEYS[1] (or KEYS[2]) is always {scope}k:{member}.
internal static class RedisSessionScripts
{
    private const string Common = """
        local scope = ARGV[1]

        local function ms(n)
            return string.format('%.0f', n)
        end

        local function optional(value)
            if value == '' then
                return nil
            end
            return string.sub(value, 2)
        end

        local function member_of(key)
            return string.sub(key, #scope + 3)
        end

        local function session_key(member)
            return scope .. 'k:' .. member
        end

        local function id_key(id)
            return scope .. 'i:' .. id
        end

        local function user_key(user)
            return scope .. 'u:' .. user
        end

        local function expires_at(seen, idle, abs)
            local idle_expiry = tonumber(seen) + tonumber(idle)
            local absolute = tonumber(abs)
            if absolute < idle_expiry then
                return absolute
            end
            return idle_expiry
        end

        -- Milliseconds to keep a session that expires at `expires`: its time left (rounded up) plus the margin.
        local function ttl_of(expires, now, margin)
            local left = expires - now
            if left < 0 then
                left = 0
            end
            return math.ceil(left / 1000) + margin
        end

        local function track(set, member, ttl)
            local existed = redis.call('EXISTS', set)
            redis.call('SADD', set, member)
            if existed == 0 then
                redis.call('PEXPIRE', set, ms(ttl))
            else
                redis.call('PEXPIRE', set, ms(ttl), 'GT')
            end
        end

        -- A few members per write, so a user set stays within a small factor of its sessions even if never listed.
        local function prune(set, user)
            for _, m in ipairs(redis.call('SRANDMEMBER', set, 3)) do
                if redis.call('HGET', session_key(m), 'user') ~= user then
                    redis.call('SREM', set, m)
                end
            end
        end

        -- Deletes a session and its index entries; `id` and `user` are its fields.
        local function forget(key, id, user)
            local member = member_of(key)
            redis.call('DEL', key)
            if redis.call('GET', id_key(id)) == member then
                redis.call('DEL', id_key(id))
            end
            if user then
                redis.call('SREM', user_key(user), member)
            end
        end

        -- Gives a session's keys the lifetime `ttl` (ms) and (re)indexes it under its id and user.
        local function keep(key, id, user, ttl)
            local member = member_of(key)
            redis.call('PEXPIRE', key, ms(ttl))
            redis.call('SET', id_key(id), member, 'PX', ms(ttl))
            if user then
                track(user_key(user), member, ttl)
            end
        end

        -- Stores a live session read from `key` (its id and old user given) under `target` at `version`, touched at
        -- now (ARGV[2]), with its indexes; returns the version, or nil when a live session already holds `target` (a
        -- key hash collision, which random keys never produce), having changed nothing.
        local function write(key, target, now, margin, id, old_user, version, data, user, idle, abs)
            local moved = target ~= key
            if moved then
                local other = redis.call('HMGET', target, 'id', 'user', 'seen', 'idle', 'abs')
                if other[1] then
                    if expires_at(other[3], other[4], other[5]) > now then
                        return nil
                    end
                    forget(target, other[1], other[2])
                end
                redis.call('RENAME', key, target)
            end
            if old_user and (moved or old_user ~= user) then
                redis.call('SREM', user_key(old_user), member_of(key))
            end
            redis.call('HSET', target, 'v', ms(version), 'data', data, 'seen', ARGV[2], 'idle', idle, 'abs', abs)
            if user then
                redis.call('HSET', target, 'user', user)
            else
                redis.call('HDEL', target, 'user')
            end
            keep(target, id, user, ttl_of(expires_at(ARGV[2], idle, abs), now, margin))
            if user then
                prune(user_key(user), user)
            end
            return version
        end

        """;

    // KEYS[1]: the session. ARGV[2] now, [3] touch interval µs, [4] margin ms. Returns false (nil) unless live, else
    // {id, user, v, data, created, seen, idle, abs, ip, ua} after the touch (absent fields as nil).
    private const string LoadText = Common + """
        local key, now, margin = KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[4])
        local h = redis.call('HMGET', key, 'id', 'user', 'v', 'data', 'created', 'seen', 'idle', 'abs', 'ip', 'ua')
        if not h[1] or expires_at(h[6], h[7], h[8]) <= now then
            return false
        end
        if now - tonumber(h[6]) >= tonumber(ARGV[3]) then
            h[6] = ARGV[2]
            redis.call('HSET', key, 'seen', ARGV[2])
            keep(key, h[1], h[2], ttl_of(expires_at(h[6], h[7], h[8]), now, margin))
        end
        return h
        """;

    // KEYS[1]: the session. ARGV[2] now (its last-seen time), [3] margin ms, [4] id, [5] user (optional), [6] data,
    // [7] created, [8] idle µs, [9] abs, [10] ip (optional), [11] user agent (optional). Returns 1 when stored, 0 when a
    // live session holds the key hash. A dead one still there is replaced, its index entries with it.
    private const string InsertText = Common + """
        local key, now, margin = KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3])
        local id, user, ip, ua = ARGV[4], optional(ARGV[5]), optional(ARGV[10]), optional(ARGV[11])
        local old = redis.call('HMGET', key, 'id', 'user', 'seen', 'idle', 'abs')
        if old[1] then
            if expires_at(old[3], old[4], old[5]) > now then
                return 0
            end
            forget(key, old[1], old[2])
        end
        redis.call('HSET', key, 'id', id, 'v', '1', 'data', ARGV[6], 'created', ARGV[7], 'seen', ARGV[2], 'idle', ARGV[8], 'abs', ARGV[9])
        if user then
            redis.call('HSET', key, 'user', user)
        end
        if ip then
            redis.call('HSET', key, 'ip', ip)
        end
        if ua then
            redis.call('HSET', key, 'ua', ua)
        end
        keep(key, id, user, ttl_of(expires_at(ARGV[2], ARGV[8], ARGV[9]), now, margin))
        if user then
            prune(user_key(user), user)
        end
        return 1
        """;

    // KEYS[1]: the session, KEYS[2]: where it is to live from now on (the same key unless regenerated). ARGV[2] now,
    // [3] margin ms, [4] expected version, [5] data, [6] user (optional), [7] idle µs, [8] abs. Returns the new version,
    // or false (nil) when the session is missing, dead at now, or at another version. A live session already at KEYS[2]
    // (a key hash collision, which random keys never produce) fails the script rather than being overwritten.
    private const string UpdateText = Common + """
        local key, target, now, margin = KEYS[1], KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3])
        local user = optional(ARGV[6])
        local h = redis.call('HMGET', key, 'id', 'user', 'v', 'seen', 'idle', 'abs')
        if not h[1] or tonumber(h[3]) ~= tonumber(ARGV[4]) or expires_at(h[4], h[5], h[6]) <= now then
            return false
        end
        local version = write(key, target, now, margin, h[1], h[2], tonumber(h[3]) + 1, ARGV[5], user, ARGV[7], ARGV[8])
        if not version then
            return redis.error_reply('ERR PgFirst session key hash already holds a live session')
        end
        return version
        """;

    // The commit of one request (see PostgreSQL's session_commit, which this mirrors). KEYS[1]: the session, KEYS[2]:
    // where it is to live from now on. ARGV[2] now, [3] margin ms, [4] expected version, [5] data as the request would
    // store it, [6] user (optional), [7] idle µs, [8] abs: the session as this request would store it on top of the
    // expected version. Its own changes: [9] '1' when it cleared the session, [10] '1' when it bound a user, [11] idle
    // µs it set or '', [12] absolute lifetime µs (from creation) it set or '', [13] the largest data in bytes, [14] the
    // number n of keys it set or removed, then n pairs: the key, and '+' followed by its value or '-' for removed.
    // Returns {0, version} written as sent; {1, version, data, user, idle, abs, id, created, seen, ip, ua} merged into
    // the session as it was (absent values as false); {2} no live session (nothing written); {3, bytes} the merge would
    // exceed the largest data (nothing written). A live session already at KEYS[2] fails the script, as Update does.
    private const string CommitText = Common + """
        local key, target, now, margin = KEYS[1], KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3])
        local h = redis.call('HMGET', key, 'id', 'user', 'v', 'seen', 'idle', 'abs', 'created', 'data', 'ip', 'ua')
        if not h[1] or expires_at(h[4], h[5], h[6]) <= now then
            return {2}
        end

        local data, user, idle, abs
        local merged = tonumber(h[3]) ~= tonumber(ARGV[4])
        if not merged then
            data, user, idle, abs = ARGV[5], optional(ARGV[6]), ARGV[7], ARGV[8]
        else
            if ARGV[9] == '1' then
                data = ARGV[5]
            else
                -- The data format of PgSessions' SessionData: 1 byte format (1), 4 bytes entry count, then per entry
                -- 2 bytes key length, key, 4 bytes value length, value; big-endian. Damaged data counts as empty.
                local changed, keys, values = {}, {}, {}
                local n = tonumber(ARGV[14])
                for i = 1, n do
                    local k, v = ARGV[13 + 2 * i], ARGV[14 + 2 * i]
                    changed[k] = true
                    keys[i] = k
                    if string.sub(v, 1, 1) == '+' then
                        values[i] = string.sub(v, 2)
                    else
                        values[i] = false
                    end
                end
                local function be(value, bytes)
                    local out = {}
                    for i = bytes, 1, -1 do
                        out[i] = string.char(value % 256)
                        value = math.floor(value / 256)
                    end
                    return table.concat(out)
                end
                local old, parts, kept = h[8] or '', {}, 0
                local total = #old
                if total >= 5 and string.byte(old, 1) == 1 then
                    local a, b, c, d = string.byte(old, 2, 5)
                    local entries = ((a * 256 + b) * 256 + c) * 256 + d
                    local pos = 6
                    for _ = 1, entries do
                        local left = total - pos + 1
                        if left < 2 then
                            parts, kept = {}, 0
                            break
                        end
                        local k1, k2 = string.byte(old, pos, pos + 1)
                        local klen = k1 * 256 + k2
                        if left - 2 < klen + 4 then
                            parts, kept = {}, 0
                            break
                        end
                        local v1, v2, v3, v4 = string.byte(old, pos + 2 + klen, pos + 5 + klen)
                        local elen = 6 + klen + ((v1 * 256 + v2) * 256 + v3) * 256 + v4
                        if left < elen then
                            parts, kept = {}, 0
                            break
                        end
                        if not changed[string.sub(old, pos + 2, pos + 1 + klen)] then
                            parts[#parts + 1] = string.sub(old, pos, pos + elen - 1)
                            kept = kept + 1
                        end
                        pos = pos + elen
                    end
                end
                for i = 1, n do
                    if values[i] then
                        parts[#parts + 1] = be(#keys[i], 2) .. keys[i] .. be(#values[i], 4) .. values[i]
                        kept = kept + 1
                    end
                end
                data = string.char(1) .. be(kept, 4) .. table.concat(parts)
            end
            if #data > tonumber(ARGV[13]) then
                return {3, #data}
            end
            if ARGV[10] == '1' then
                user = optional(ARGV[6])
            else
                user = h[2]
            end
            idle = h[5]
            if ARGV[11] ~= '' then
                idle = ARGV[11]
            end
            abs = h[6]
            if ARGV[12] ~= '' then
                abs = ms(tonumber(h[7]) + tonumber(ARGV[12]))
            end
        end

        local version = write(key, target, now, margin, h[1], h[2], tonumber(h[3]) + 1, data, user, idle, abs)
        if not version then
            return redis.error_reply('ERR PgFirst session key hash already holds a live session')
        end
        if not merged then
            return {0, version}
        end
        return {1, version, data, user or false, idle, abs, h[1], h[7], ARGV[2], h[9] or false, h[10] or false}
        """;

    // KEYS[1]: the user set. ARGV[2] the user, [3] now. Returns {id, created, seen, idle, abs, ip, ua} per live session,
    // unordered. Members whose session is gone or bound to someone else are dropped.
    private const string ListText = Common + """
        local user, now = ARGV[2], tonumber(ARGV[3])
        local sessions = {}
        for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
            local h = redis.call('HMGET', session_key(m), 'id', 'user', 'created', 'seen', 'idle', 'abs', 'ip', 'ua')
            if not h[1] or h[2] ~= user then
                redis.call('SREM', KEYS[1], m)
            elseif expires_at(h[4], h[5], h[6]) > now then
                table.remove(h, 2)
                sessions[#sessions + 1] = h
            end
        end
        return sessions
        """;

    // KEYS[1]: the session's id key. ARGV[2] the session id. Returns 1 when a session was deleted, else 0.
    private const string RevokeText = Common + """
        local member = redis.call('GET', KEYS[1])
        if not member then
            return 0
        end
        redis.call('DEL', KEYS[1])
        local key = session_key(member)
        local h = redis.call('HMGET', key, 'id', 'user')
        if h[1] ~= ARGV[2] then
            return 0
        end
        forget(key, h[1], h[2])
        return 1
        """;

    // KEYS[1]: the user set. ARGV[2] the user, [3] the session id to keep, or ''. Returns how many were deleted.
    private const string RevokeAllText = Common + """
        local user, keep_id = ARGV[2], ARGV[3]
        local deleted = 0
        for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
            local key = session_key(m)
            local h = redis.call('HMGET', key, 'id', 'user')
            if not h[1] or h[2] ~= user then
                redis.call('SREM', KEYS[1], m)
            elseif h[1] ~= keep_id then
                forget(key, h[1], h[2])
                deleted = deleted + 1
            end
        end
        return deleted
        """;

    public static RedisScript Load { get; } = new(LoadText);

    public static RedisScript Insert { get; } = new(InsertText);

    public static RedisScript Update { get; } = new(UpdateText);

    public static RedisScript Commit { get; } = new(CommitText);

    public static RedisScript List { get; } = new(ListText);

    public static RedisScript Revoke { get; } = new(RevokeText);

    public static RedisScript RevokeAll { get; } = new(RevokeAllText);
}
