using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace PgSessions.Tests;

public sealed class SessionReplicaOptionsTests
{
    [Theory]
    [InlineData(PgReadConsistency.BoundedStaleness, "00:00:01", "PgFirst:Replicas:ConnectionString is not set")]
    [InlineData(PgReadConsistency.Strong, "00:00:00", "PgSessions:MaxReplicaLag")]
    public void BadReplicaSettings_FailAtStartup(PgReadConsistency consistency, string maxLag, string message)
    {
        var services = new ServiceCollection();
        services.AddPgFirst();
        services.AddPgSessions(o =>
        {
            o.ReadConsistency = consistency;
            o.MaxReplicaLag = TimeSpan.Parse(maxLag, System.Globalization.CultureInfo.InvariantCulture);
        });
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<PgSessionOptions>>().Value);

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }
}
