using System.Collections.Concurrent;

namespace PgQueue.Internal;

// In-process wake-ups: a producer in the same process as the workers wakes them directly, with no round trip; the
// listener forwards notifications from other processes here too.
internal sealed class JobWakeHub
{
    private readonly ConcurrentDictionary<string, Action> _runners = new(StringComparer.Ordinal);

    public void Register(string queue, Action wake) => _runners[queue] = wake;

    public void Unregister(string queue) => _runners.TryRemove(queue, out _);

    public void Wake(string queue)
    {
        if (_runners.TryGetValue(queue, out var wake))
        {
            wake();
        }
    }

    public void WakeAll()
    {
        foreach (var wake in _runners.Values)
        {
            wake();
        }
    }
}

// At most one NOTIFY per queue per window, plus one trailing NOTIFY at the end of a window in which enqueues were
// not announced, so a burst of enqueues costs a handful of notifications and the last job never waits for a poll.
// The trailing notification is scheduled only after the unannounced row is committed (Trail), never before.
internal sealed class NotifyDebouncer(TimeProvider timeProvider, TimeSpan window, Func<IReadOnlyCollection<string>, Task> sendTrailing)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, long> _lastSent = new(StringComparer.Ordinal);
    private readonly HashSet<string> _trailing = new(StringComparer.Ordinal);
    private bool _trailingScheduled;

    // True when this enqueue should carry the notification itself (none was sent for the queue within the window).
    public bool TryLead(string queue)
    {
        var now = timeProvider.GetTimestamp();
        lock (_lock)
        {
            if (_lastSent.TryGetValue(queue, out var last) && timeProvider.GetElapsedTime(last, now) < window)
            {
                return false;
            }

            _lastSent[queue] = now;
            _trailing.Remove(queue);
            return true;
        }
    }

    // An enqueue that did not lead is committed: announce it at the end of the current window.
    public void Trail(string queue)
    {
        TimeSpan delay;
        lock (_lock)
        {
            _trailing.Add(queue);
            if (_trailingScheduled)
            {
                return;
            }

            _trailingScheduled = true;
            var elapsed = _lastSent.TryGetValue(queue, out var last) ? timeProvider.GetElapsedTime(last) : window;
            delay = elapsed >= window ? TimeSpan.Zero : window - elapsed;
        }

        _ = SendTrailingAsync(delay);
    }

    private async Task SendTrailingAsync(TimeSpan delay)
    {
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, timeProvider).ConfigureAwait(false);
        }

        string[] queues;
        lock (_lock)
        {
            _trailingScheduled = false;
            queues = [.. _trailing];
            _trailing.Clear();
            var now = timeProvider.GetTimestamp();
            foreach (var queue in queues)
            {
                _lastSent[queue] = now;
            }
        }

        if (queues.Length > 0)
        {
            try
            {
                await sendTrailing(queues).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Best effort: the workers' polling picks the jobs up regardless.
            }
        }
    }
}
