namespace PgFirst.Redis.Internal;

// The Lua scripts of the Redis job store: every operation is one script, so it is one round trip and atomic, which is
// what SKIP LOCKED and the single-statement moves give the PostgreSQL store.
//
// Layout, under the root {prefix}q{{prefix}}: (one hash tag, so every key of the store lives in one cluster slot):
//   seq                 STRING  the last job id (INCR).
//   queues              SET     every queue that ever had a job, for promote.
//   j:{id}              HASH    the job: q (queue), k (kind), p (payload), pr (priority), st (state, JobState's number),
//                               a (attempt), m (max attempts), ls (lease token), enq (enqueued at), run (run-at while
//                               pending: when it becomes available, or when a running job's lease expires), ca
//                               (claimed at), by (worker, while running), uk (unique key), tp (trace parent),
//                               err (the error history, a JSON array), fin (finished at), del (delete after).
//   r:{queue}           ZSET    the available jobs, all at score 0 so they sort by member: the claim order as fixed-width
//                               digits, 32767 - priority (5), run-at (18), id (19). ZRANGE 0 n-1 is the next n to claim.
//   s:{queue}           ZSET    the scheduled jobs (delayed, retrying, snoozed) by run-at.
//   l:{queue}           ZSET    the running jobs by lease expiry; promote rescues those whose lease expired.
//   u:{unique key}      STRING  the id of the pending or running job that holds the key.
//   f{state}:{queue}    ZSET    finished jobs of a state (3, 4, 5) by finished-at, members the id as 19 digits, so ties
//   f{state}            ZSET    read newest first by ZREVRANGE come id descending; the second spans all queues.
//   del                 ZSET    finished jobs by delete-after, for retention.
//   rc:{name}           HASH    a recurring job: cron, tz, q, k, p, pr, m, next (next occurrence), last, lastid.
//   rcdue               ZSET    the recurring jobs' names by next occurrence.
// Queue names are never empty, so no per-queue key equals a store-wide one.
//
// Times are unix microseconds on the application's clock (the caller's "now"), never Redis's clock; below 2^53, so
// scores and Lua's doubles hold them exactly. Ids and lease tokens stay strings in Lua (formatted with %.0f when they
// come from INCR/HINCRBY), and stored strings are returned as they are, so values round-trip exactly. Optional strings
// are passed as '' (none) or '+' followed by the value.
//
// The scripts compute the keys they touch from ARGV[1] (the root); KEYS[1] is declared for routing, and every key
// shares its hash tag, so they run on Redis Cluster too.
internal static class RedisJobQueueScripts
{
    private const string Common = """
        local root = ARGV[1]
        local queues_key = root .. 'queues'
        local retention_key = root .. 'del'

        local function num(n)
            return string.format('%.0f', n)
        end

        local function optional(value)
            if value == '' then
                return false
            end
            return string.sub(value, 2)
        end

        local function pad(s, width)
            if #s >= width then
                return s
            end
            return string.rep('0', width - #s) .. s
        end

        local function job_key(id)
            return root .. 'j:' .. id
        end

        local function ready_key(q)
            return root .. 'r:' .. q
        end

        local function scheduled_key(q)
            return root .. 's:' .. q
        end

        local function lease_key(q)
            return root .. 'l:' .. q
        end

        local function unique_key(uk)
            return root .. 'u:' .. uk
        end

        local function finished_key(state, q)
            if q then
                return root .. 'f' .. state .. ':' .. q
            end
            return root .. 'f' .. state
        end

        local function pending(state)
            return state == '0' or state == '1' or state == '2'
        end

        -- The claim order: priority descending, then run-at, then id. Run-ats before 1970 sort as 1970.
        local function ready_member(priority, run, id)
            if string.sub(run, 1, 1) == '-' then
                run = '0'
            end
            return string.format('%05d', 32767 - tonumber(priority)) .. pad(run, 18) .. pad(id, 19)
        end

        local function id_of(member, from)
            return string.match(string.sub(member, from), '^0*(%d+)$')
        end

        -- A job's member in the set of its state must be removed before its priority or run-at changes.
        local function unindex(id, q, state, priority, run)
            if state == '0' then
                redis.call('ZREM', ready_key(q), ready_member(priority, run, id))
            elseif state == '1' then
                redis.call('ZREM', lease_key(q), id)
            elseif state == '2' then
                redis.call('ZREM', scheduled_key(q), id)
            end
        end

        local function make_available(key, id, q, priority, run)
            redis.call('HSET', key, 'st', '0', 'run', run)
            redis.call('ZADD', ready_key(q), 0, ready_member(priority, run, id))
        end

        local function free_unique(uk, id)
            if uk then
                local k = unique_key(uk)
                if redis.call('GET', k) == id then
                    redis.call('DEL', k)
                end
            end
        end

        -- Appends the entries of a JSON array to the job's history without re-encoding the ones already there.
        local function append_errors(key, json)
            local old = redis.call('HGET', key, 'err')
            if not old or old == '[]' then
                redis.call('HSET', key, 'err', json)
            elseif json ~= '[]' then
                redis.call('HSET', key, 'err', string.sub(old, 1, -2) .. ',' .. string.sub(json, 2))
            end
        end

        -- Moves a pending job (its fields q, st, pr, run, uk in h) to a finished state, kept until `del`.
        local function finish(key, id, h, state, now, del)
            unindex(id, h.q, h.st, h.pr, h.run)
            free_unique(h.uk, id)
            redis.call('HSET', key, 'st', state, 'fin', now, 'del', del)
            redis.call('HDEL', key, 'run', 'by')
            local member = pad(id, 19)
            redis.call('ZADD', finished_key(state, h.q), now, member)
            redis.call('ZADD', finished_key(state), now, member)
            redis.call('ZADD', retention_key, del, id)
        end

        local function read_pending(key)
            local v = redis.call('HMGET', key, 'ls', 'st', 'q', 'pr', 'run', 'uk')
            return { ls = v[1], st = v[2], q = v[3], pr = v[4], run = v[5], uk = v[6] }
        end

        -- Success: kept as succeeded until `del`, or deleted at once when `del` is not after `now`. Like the
        -- PostgreSQL store, the token is checked, not the state: a pending job whose current lease it is finishes.
        local function complete(id, lease, now, del)
            local key = job_key(id)
            local h = read_pending(key)
            if h.ls ~= lease or not pending(h.st) then
                return 0
            end
            if tonumber(del) > tonumber(now) then
                finish(key, id, h, '3', now, del)
            else
                unindex(id, h.q, h.st, h.pr, h.run)
                free_unique(h.uk, id)
                redis.call('DEL', key)
            end
            return 1
        end

        -- A new job; returns its id. `delayed` jobs wait in the scheduled set until promoted.
        local function create_job(q, kind, payload, priority, run, delayed, max, uk, enq, tp)
            local id = num(redis.call('INCR', root .. 'seq'))
            local key = job_key(id)
            redis.call('HSET', key, 'q', q, 'k', kind, 'p', payload, 'pr', priority, 'a', '0', 'm', max, 'ls', '0', 'enq', enq)
            if uk then
                redis.call('HSET', key, 'uk', uk)
                redis.call('SET', unique_key(uk), id)
            end
            if tp then
                redis.call('HSET', key, 'tp', tp)
            end
            if delayed then
                redis.call('HSET', key, 'st', '2', 'run', run)
                redis.call('ZADD', scheduled_key(q), run, id)
            else
                make_available(key, id, q, priority, run)
            end
            redis.call('SADD', queues_key, q)
            return id
        end

        """;

    // KEYS[1]: the id sequence. ARGV[2] the channel, [3] how many jobs, then 11 fields per job: queue, kind, payload,
    // priority, run-at, delayed (1|0), max attempts, unique key (optional), enqueued at, trace parent (optional),
    // notify (1|0). Returns per job its id, or '-' and the id of the job that holds its unique key.
    private const string EnqueueText = Common + """
        local channel, count = ARGV[2], tonumber(ARGV[3])
        local results, notify = {}, {}
        for i = 0, count - 1 do
            local b = 4 + i * 11
            local q, uk = ARGV[b], optional(ARGV[b + 7])
            local holder = uk and redis.call('GET', unique_key(uk))
            if holder then
                results[#results + 1] = '-' .. holder
            else
                local delayed = ARGV[b + 5] == '1'
                results[#results + 1] = create_job(q, ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], delayed,
                    ARGV[b + 6], uk, ARGV[b + 8], optional(ARGV[b + 9]))
                if ARGV[b + 10] == '1' and not delayed then
                    notify[q] = true
                end
            end
        end
        for q in pairs(notify) do
            redis.call('PUBLISH', channel, q)
        end
        return results
        """;

    // KEYS[1]: the queue's available set. ARGV[2] queue, [3] how many to claim, [4] now, [5] lease expiry, [6] worker,
    // [7] delete-after of the succeeded jobs, then (id, lease) pairs of succeeded jobs to finish first. Returns
    // {finished count, {id, lease, kind, payload, attempt, max, enqueued, run-at before the claim, trace parent, errors}...}.
    private const string ClaimText = Common + """
        local q, count, now, expires, worker = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
        local completed = 0
        for i = 8, #ARGV - 1, 2 do
            completed = completed + complete(ARGV[i], ARGV[i + 1], now, ARGV[7])
        end
        local result = { completed }
        if count > 0 then
            for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, count - 1)) do
                redis.call('ZREM', KEYS[1], member)
                local id = id_of(member, 24)
                local key = job_key(id)
                local h = redis.call('HMGET', key, 'st', 'run', 'k', 'p', 'm', 'enq', 'tp', 'err')
                if h[1] == '0' then
                    local attempt = redis.call('HINCRBY', key, 'a', 1)
                    local lease = redis.call('HINCRBY', key, 'ls', 1)
                    redis.call('HSET', key, 'st', '1', 'run', expires, 'ca', now, 'by', worker)
                    redis.call('ZADD', lease_key(q), expires, id)
                    result[#result + 1] = { id, num(lease), h[3], h[4], num(attempt), h[5], h[6], h[2], h[7], h[8] }
                end
            end
        end
        return result
        """;

    // KEYS[1]: the id sequence. ARGV[2] now, [3] delete-after, then (id, lease) pairs. Returns how many finished.
    private const string CompleteText = Common + """
        local completed = 0
        for i = 4, #ARGV - 1, 2 do
            completed = completed + complete(ARGV[i], ARGV[i + 1], ARGV[2], ARGV[3])
        end
        return completed
        """;

    // KEYS[1]: the job. ARGV[2] id, [3] lease, [4] run-at, [5] errors to append (a JSON array, or ''), [6] 1 to give the
    // attempt back, [7] 1 when it is available at once (a retry already due). Returns 1, or 0 when the token is stale.
    private const string RetryText = Common + """
        local key, id = KEYS[1], ARGV[2]
        local h = read_pending(key)
        if h.ls ~= ARGV[3] or not pending(h.st) then
            return 0
        end
        unindex(id, h.q, h.st, h.pr, h.run)
        if ARGV[5] ~= '' then
            append_errors(key, ARGV[5])
        end
        if ARGV[6] == '1' then
            redis.call('HINCRBY', key, 'a', -1)
        end
        redis.call('HDEL', key, 'by')
        if ARGV[7] == '1' then
            make_available(key, id, h.q, h.pr, ARGV[4])
        else
            redis.call('HSET', key, 'st', '2', 'run', ARGV[4])
            redis.call('ZADD', scheduled_key(h.q), ARGV[4], id)
        end
        return 1
        """;

    // KEYS[1]: the job. ARGV[2] id, [3] lease, [4] state (4|5), [5] errors to append (a JSON array), [6] now,
    // [7] delete-after. Returns 1, or 0 when the token is stale.
    private const string FinishText = Common + """
        local key, id = KEYS[1], ARGV[2]
        local h = read_pending(key)
        if h.ls ~= ARGV[3] or not pending(h.st) then
            return 0
        end
        append_errors(key, ARGV[5])
        finish(key, id, h, ARGV[4], ARGV[6], ARGV[7])
        return 1
        """;

    // KEYS[1]: the id sequence. ARGV[2] the new lease expiry, then (id, lease) pairs. Returns the ids whose lease was
    // lost (stale token, not running, or gone).
    private const string ExtendText = Common + """
        local expires = ARGV[2]
        local lost = {}
        for i = 3, #ARGV - 1, 2 do
            local id = ARGV[i]
            local key = job_key(id)
            local h = redis.call('HMGET', key, 'ls', 'st', 'q')
            if h[1] == ARGV[i + 1] and h[2] == '1' then
                redis.call('HSET', key, 'run', expires)
                redis.call('ZADD', lease_key(h[3]), expires, id)
            else
                lost[#lost + 1] = id
            end
        end
        return lost
        """;

    // KEYS[1]: the id sequence. ARGV[2] now, then (id, lease) pairs. Returns how many running jobs went back to
    // available, with their attempt given back.
    private const string ReleaseText = Common + """
        local now = ARGV[2]
        local released = 0
        for i = 3, #ARGV - 1, 2 do
            local id = ARGV[i]
            local key = job_key(id)
            local h = read_pending(key)
            if h.ls == ARGV[i + 1] and h.st == '1' then
                redis.call('ZREM', lease_key(h.q), id)
                redis.call('HINCRBY', key, 'a', -1)
                redis.call('HDEL', key, 'by')
                make_available(key, id, h.q, h.pr, now)
                released = released + 1
            end
        end
        return released
        """;

    // KEYS[1]: the queue set. ARGV[2] now, [3] now as a JSON string, [4] the most jobs to move. Scheduled jobs that are
    // due become available at their run-at; running jobs whose lease expired too, with a LeaseExpired entry (the attempt
    // keeps its count, so a job that keeps killing its worker still ends dead). Returns {queue, count, ...}.
    private const string PromoteText = Common + """
        local now, at, left = ARGV[2], ARGV[3], tonumber(ARGV[4])
        local result = {}
        for _, q in ipairs(redis.call('SMEMBERS', queues_key)) do
            if left <= 0 then
                break
            end
            local moved = 0
            local scheduled = scheduled_key(q)
            for _, id in ipairs(redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, left)) do
                local key = job_key(id)
                local h = redis.call('HMGET', key, 'pr', 'run')
                redis.call('ZREM', scheduled, id)
                if h[1] then
                    make_available(key, id, q, h[1], h[2])
                    moved = moved + 1
                end
            end
            left = left - moved
            if left > 0 then
                local leases = lease_key(q)
                for _, id in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, left)) do
                    local key = job_key(id)
                    local h = redis.call('HMGET', key, 'pr', 'run', 'a', 'by')
                    redis.call('ZREM', leases, id)
                    if h[1] then
                        local message = 'The worker ' .. (h[4] or '?') .. ' stopped renewing its lease.'
                        append_errors(key, '[{"attempt":' .. h[3] .. ',"at":' .. at .. ',"type":"LeaseExpired","message":'
                            .. cjson.encode(message) .. '}]')
                        redis.call('HDEL', key, 'by')
                        make_available(key, id, q, h[1], h[2])
                        moved = moved + 1
                    end
                    left = left - 1
                end
            end
            if moved > 0 then
                result[#result + 1] = q
                result[#result + 1] = moved
            end
        end
        return result
        """;

    // KEYS[1]: the finished index (of a state, for one queue or all). ARGV[2] the most to return. Returns the jobs,
    // newest first, each {id, then the fields RedisJobQueueBackend.JobFields names}.
    private const string ListFinishedText = Common + """
        local jobs = {}
        for _, member in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)) do
            local id = id_of(member, 1)
            local h = redis.call('HMGET', job_key(id), 'q', 'st', 'pr', 'a', 'm', 'k', 'p', 'uk', 'enq', 'run', 'ca', 'fin', 'by', 'err')
            if h[1] then
                table.insert(h, 1, id)
                jobs[#jobs + 1] = h
            end
        end
        return jobs
        """;

    // KEYS[1]: the job. ARGV[2] id, [3] now. A dead or cancelled job goes back to available with fresh attempts and its
    // lease sequence continued, unless its unique key is held again. Returns 1 when requeued, else 0.
    private const string RequeueText = Common + """
        local key, id, now = KEYS[1], ARGV[2], ARGV[3]
        local h = redis.call('HMGET', key, 'st', 'q', 'pr', 'uk')
        if h[1] ~= '4' and h[1] ~= '5' then
            return 0
        end
        if h[4] and redis.call('EXISTS', unique_key(h[4])) == 1 then
            return 0
        end
        local member = pad(id, 19)
        redis.call('ZREM', finished_key(h[1], h[2]), member)
        redis.call('ZREM', finished_key(h[1]), member)
        redis.call('ZREM', retention_key, id)
        redis.call('HDEL', key, 'fin', 'del', 'ca', 'by')
        redis.call('HSET', key, 'a', '0')
        if h[4] then
            redis.call('SET', unique_key(h[4]), id)
        end
        make_available(key, id, h[2], h[3], now)
        return 1
        """;

    // KEYS[1]: the job. ARGV[2] id, [3] now, [4] delete-after, [5] the entry to append (a JSON array). Cancels an
    // available or scheduled job. Returns 1 when cancelled, else 0.
    private const string CancelText = Common + """
        local key, id = KEYS[1], ARGV[2]
        local h = read_pending(key)
        if h.st ~= '0' and h.st ~= '2' then
            return 0
        end
        append_errors(key, ARGV[5])
        finish(key, id, h, '4', ARGV[3], ARGV[4])
        return 1
        """;

    // KEYS[1]: the queue set. ARGV[2] the cap, then the queues. Returns {available, scheduled, running, dead} per queue,
    // each at most the cap.
    private const string StatsText = Common + """
        local cap = tonumber(ARGV[2])
        local result = {}
        local function capped(n)
            if n > cap then
                return cap
            end
            return n
        end
        for i = 3, #ARGV do
            local q = ARGV[i]
            result[#result + 1] = capped(redis.call('ZCARD', ready_key(q)))
            result[#result + 1] = capped(redis.call('ZCARD', scheduled_key(q)))
            result[#result + 1] = capped(redis.call('ZCARD', lease_key(q)))
            result[#result + 1] = capped(redis.call('ZCARD', finished_key('5', q)))
        end
        return result
        """;

    // KEYS[1]: the definition. ARGV[2] name, [3] cron, [4] time zone, [5] queue, [6] kind, [7] payload, [8] priority,
    // [9] max attempts, [10] next occurrence, used unless the stored cron and time zone are the same.
    private const string UpsertRecurringText = Common + """
        local key = KEYS[1]
        local old = redis.call('HMGET', key, 'cron', 'tz', 'next')
        local next = ARGV[10]
        if old[3] and old[1] == ARGV[3] and old[2] == ARGV[4] then
            next = old[3]
        end
        redis.call('HSET', key, 'cron', ARGV[3], 'tz', ARGV[4], 'q', ARGV[5], 'k', ARGV[6], 'p', ARGV[7], 'pr', ARGV[8], 'm', ARGV[9], 'next', next)
        redis.call('ZADD', root .. 'rcdue', next, ARGV[2])
        return 1
        """;

    // KEYS[1]: the due set. ARGV[2] now, [3] the most to return. Returns the due definitions, soonest first, each
    // {name, cron, time zone, queue, kind, payload, priority, max attempts, next occurrence}.
    private const string DueRecurringText = Common + """
        local due = {}
        for _, name in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))) do
            local h = redis.call('HMGET', root .. 'rc:' .. name, 'cron', 'tz', 'q', 'k', 'p', 'pr', 'm', 'next')
            if h[1] then
                table.insert(h, 1, name)
                due[#due + 1] = h
            else
                redis.call('ZREM', KEYS[1], name)
            end
        end
        return due
        """;

    // KEYS[1]: the due set. ARGV[2] the channel, [3] now, then triples (name, the next occurrence it was read with, the
    // one after it). The atomic "fire if due": a definition still at the occurrence it was read with, and due, enqueues
    // one job and moves on; one that another instance fired (or that was rescheduled) meanwhile is skipped, so each
    // occurrence fires once. Returns the names that fired.
    private const string FireRecurringText = Common + """
        local channel, now = ARGV[2], ARGV[3]
        local fired, notify = {}, {}
        for i = 4, #ARGV - 2, 3 do
            local name = ARGV[i]
            local key = root .. 'rc:' .. name
            local h = redis.call('HMGET', key, 'next', 'q', 'k', 'p', 'pr', 'm')
            if h[1] and h[1] == ARGV[i + 1] and tonumber(h[1]) <= tonumber(now) then
                local id = create_job(h[2], h[3], h[4], h[5], now, false, h[6], false, now, false)
                redis.call('HSET', key, 'next', ARGV[i + 2], 'last', now, 'lastid', id)
                redis.call('ZADD', KEYS[1], ARGV[i + 2], name)
                fired[#fired + 1] = name
                notify[h[2]] = true
            end
        end
        for q in pairs(notify) do
            redis.call('PUBLISH', channel, q)
        end
        return fired
        """;

    // KEYS[1]: the retention set. ARGV[2] now, [3] the most to delete. Returns how many finished jobs were deleted.
    private const string DeleteFinishedText = Common + """
        local doomed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
        for _, id in ipairs(doomed) do
            local key = job_key(id)
            local h = redis.call('HMGET', key, 'st', 'q')
            if h[1] then
                local member = pad(id, 19)
                redis.call('ZREM', finished_key(h[1], h[2]), member)
                redis.call('ZREM', finished_key(h[1]), member)
                redis.call('DEL', key)
            end
            redis.call('ZREM', KEYS[1], id)
        end
        return #doomed
        """;

    public static RedisScript Enqueue { get; } = new(EnqueueText);

    public static RedisScript Claim { get; } = new(ClaimText);

    public static RedisScript Complete { get; } = new(CompleteText);

    public static RedisScript Retry { get; } = new(RetryText);

    public static RedisScript Finish { get; } = new(FinishText);

    public static RedisScript Extend { get; } = new(ExtendText);

    public static RedisScript Release { get; } = new(ReleaseText);

    public static RedisScript Promote { get; } = new(PromoteText);

    public static RedisScript ListFinished { get; } = new(ListFinishedText);

    public static RedisScript Requeue { get; } = new(RequeueText);

    public static RedisScript Cancel { get; } = new(CancelText);

    public static RedisScript Stats { get; } = new(StatsText);

    public static RedisScript UpsertRecurring { get; } = new(UpsertRecurringText);

    public static RedisScript DueRecurring { get; } = new(DueRecurringText);

    public static RedisScript FireRecurring { get; } = new(FireRecurringText);

    public static RedisScript DeleteFinished { get; } = new(DeleteFinishedText);
}
