using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace PgFirst.Core.Tests;

public class PgStoreProbeTests
{
    private static CancellationToken CancellationToken => TestContext.Current.CancellationToken;

    private static HealthCheckContext Context(HealthStatus? failureStatus = null) => new()
    {
        Registration = new HealthCheckRegistration("probe", _ => throw new InvalidOperationException("unused"), failureStatus, null),
    };

    [Fact]
    public async Task AnsweringStore_IsHealthy()
    {
        var result = await PgStoreProbe.CheckAsync(Context(), "test store", _ => ValueTask.CompletedTask, CancellationToken);

        Assert.Equal(HealthStatus.Healthy, result.Status);
        Assert.Equal("The test store answers.", result.Description);
    }

    [Fact]
    public async Task FailingStore_ReportsTheRegistrationsFailureStatus_WithTheError()
    {
        var error = new InvalidOperationException("connection refused");

        var result = await PgStoreProbe.CheckAsync(Context(HealthStatus.Degraded), "test store", _ => ValueTask.FromException(error), CancellationToken);

        Assert.Equal(HealthStatus.Degraded, result.Status);
        Assert.Same(error, result.Exception);
        Assert.Equal("The test store failed: connection refused", result.Description);
    }

    [Fact]
    public async Task StoresOwnTimeout_IsAFailure_ButTheCallersCancellationPropagates()
    {
        var timedOut = await PgStoreProbe.CheckAsync(Context(), "test store", _ => ValueTask.FromException(new TaskCanceledException("timeout")), CancellationToken);
        using var caller = new CancellationTokenSource();
        await caller.CancelAsync();

        Assert.Equal(HealthStatus.Unhealthy, timedOut.Status);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            PgStoreProbe.CheckAsync(Context(), "test store", ct => ValueTask.FromException(new OperationCanceledException(ct)), caller.Token));
    }
}
