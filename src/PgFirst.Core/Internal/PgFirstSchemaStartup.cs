using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace PgFirst.Core.Internal;

// Applies the schema in StartingAsync, before any hosted service (the maintenance runner, queue workers) starts,
// and only when the app opted in. Never from a constructor.
internal sealed class PgFirstSchemaStartup(IServiceProvider services, IOptions<PgFirstOptions> options) : IHostedLifecycleService
{
    public async Task StartingAsync(CancellationToken cancellationToken)
    {
        if (options.Value.ApplySchemaOnStartup)
        {
            var installer = (PgSchemaInstaller)services.GetService(typeof(PgSchemaInstaller))!;
            await installer.ApplyAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
