using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace PgRateLimit.Internal;

// Opens and readies the store's connections before the app takes traffic: registered with the other hosted services,
// which the host starts before the server. Start-up waits up to WarmUpTimeout; after that the app starts anyway and the
// warm-up retries every second in the background. The readiness check reports not-ready until it has succeeded.
internal sealed partial class PgRateLimitWarmUp(PgRateLimitRuntime runtime, IOptions<PgRateLimitOptions> options, ILogger<PgRateLimitWarmUp> logger) : IHostedService, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private Task? _background;
    private volatile bool _disposed;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        if (settings.WarmUpConnections == 0)
        {
            return;
        }

        runtime.IsWarm = false;
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        bounded.CancelAfter(settings.WarmUpTimeout);
        try
        {
            await runtime.Store.WarmUpAsync(settings.WarmUpConnections, bounded.Token).ConfigureAwait(false);
            runtime.IsWarm = true;
            LogWarm(logger, settings.WarmUpConnections);
            return;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && ex is not (ArgumentException or InvalidCastException))
        {
            LogNotWarm(logger, ex, settings.WarmUpTimeout);
        }

        _background = Task.Run(() => RetryAsync(settings.WarmUpConnections, _stopping.Token), CancellationToken.None);
    }

    // A host may stop its services again after disposing them (test factories do): then there is nothing to stop.
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_disposed)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_background is { } background)
        {
            await background.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    public void Dispose()
    {
        _disposed = true;
        _stopping.Dispose();
    }

    private async Task RetryAsync(int connections, CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), stopping).ConfigureAwait(false);
                await runtime.Store.WarmUpAsync(connections, stopping).ConfigureAwait(false);
                runtime.IsWarm = true;
                LogWarm(logger, connections);
                return;
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception)
            {
                // Still not ready: the readiness check says so; try again.
            }
        }
    }

    [LoggerMessage(PgRateLimitEventIds.WarmedUp, LogLevel.Information, "The rate-limit store is warm: up to {Connections} connections open and ready.")]
    private static partial void LogWarm(ILogger logger, int connections);

    [LoggerMessage(PgRateLimitEventIds.NotWarm, LogLevel.Warning, "The rate-limit store was not ready within {Timeout}; the app starts anyway, decisions follow each policy's failure mode (a bounded local share when fail-open), and the warm-up goes on in the background.")]
    private static partial void LogNotWarm(ILogger logger, Exception exception, TimeSpan timeout);
}
