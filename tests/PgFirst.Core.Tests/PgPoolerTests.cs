using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Npgsql;
using PgFirst.Testing;

namespace PgFirst.Core.Tests;

// The symptoms of a transaction pooler, raised for real by the server, and what PgPooler makes of them.
[Trait("Category", "Pooler")]
public class PgPoolerTests(PostgresServer server) : PostgresTest(server)
{
    private async Task<PostgresException> FailAsync(string sql) =>
        await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(sql));

    [Fact]
    public async Task TryTranslate_UnknownPreparedStatement_WithoutTheSetting_NamesIt()
    {
        var error = await FailAsync("EXECUTE pgfirst_never_prepared_" + Guid.NewGuid().ToString("N"));

        var translated = PgPooler.TryTranslate(error, PgPoolerMode.None, Schema);

        Assert.NotNull(translated);
        Assert.Contains("PgFirst:Pooler=Transaction", translated.Message, StringComparison.Ordinal);
        Assert.Contains("26000", translated.Message, StringComparison.Ordinal);
        Assert.Same(error, translated.InnerException);
    }

    [Fact]
    public async Task TryTranslate_UnknownPreparedStatement_InTransactionMode_PointsAtWhoPrepares()
    {
        var error = await FailAsync("EXECUTE pgfirst_never_prepared_" + Guid.NewGuid().ToString("N"));

        var translated = PgPooler.TryTranslate(error, PgPoolerMode.Transaction, Schema);

        Assert.NotNull(translated);
        Assert.Contains("Max Auto Prepare", translated.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("SELECT * FROM \"{other}\".cache_entry")]
    [InlineData("SELECT * FROM \"{other}\".missing")]
    [InlineData("SELECT \"{other}\".cache_get('x')")]
    public async Task TryTranslate_StatementForAnotherSchema_IsAPoolerSymptom(string sql)
    {
        await CreateSchemaAsync();
        var other = PostgresServer.NewSchemaName();
        var error = await FailAsync(sql.Replace("{other}", other, StringComparison.Ordinal));

        var translated = PgPooler.TryTranslate(error, PgPoolerMode.None, Schema);

        Assert.NotNull(translated);
        Assert.Contains(other, translated.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("SELECT * FROM \"{schema}\".missing")]
    [InlineData("SELECT \"{schema}\".missing_function(1)")]
    [InlineData("SELECT 1/0")]
    public async Task TryTranslate_ErrorAboutThisStoresOwnSchema_OrAnythingElse_IsLeftAlone(string sql)
    {
        await CreateSchemaAsync();
        var error = await FailAsync(sql.Replace("{schema}", Schema, StringComparison.Ordinal));

        Assert.Null(PgPooler.TryTranslate(error, PgPoolerMode.None, Schema));
    }

    [Fact]
    public async Task TryTranslate_MissingSchemaOfItsOwn_IsLeftToTheSchemaErrors()
    {
        var error = await FailAsync($"SELECT * FROM \"{Schema}\".item");

        Assert.Null(PgPooler.TryTranslate(error, PgPoolerMode.None, Schema));
        Assert.NotNull(PgSchemaErrors.TryTranslate(error, TestModules.Items, Schema));
    }

    [Fact]
    public void EnsureCompatible_DirectMode_AcceptsAnyDataSource()
    {
        using var dataSource = NpgsqlDataSource.Create(Server.ConnectionString + ";Max Auto Prepare=20");

        Assert.Null(Record.Exception(() => PgPooler.EnsureCompatible(dataSource, PgPoolerMode.None)));
    }

    [Fact]
    public void EnsureCompatible_TransactionMode_WithoutPooling_NeedsNoResetSetting()
    {
        using var dataSource = NpgsqlDataSource.Create(Server.ConnectionString + ";Pooling=false");

        Assert.Null(Record.Exception(() => PgPooler.EnsureCompatible(dataSource, PgPoolerMode.Transaction)));
    }

    [Fact]
    public void EnsureCompatible_UndefinedMode_Throws()
    {
        using var dataSource = NpgsqlDataSource.Create(Server.ConnectionString);

        Assert.Throws<ArgumentOutOfRangeException>(() => PgPooler.EnsureCompatible(dataSource, (PgPoolerMode)7));
    }

    [Fact]
    public async Task DetectAsync_DirectConnection_FindsNoPooler_PgBouncer_IsFound()
    {
        await using var direct = NpgsqlDataSource.Create(Server.DirectConnectionString);
        await using var pooled = NpgsqlDataSource.Create(Server.PoolerConnectionString);

        Assert.False(await PgPooler.DetectAsync(direct, CancellationToken));
        Assert.True(await PgPooler.DetectAsync(pooled, CancellationToken));
    }

    [Theory]
    [InlineData(PgPoolerMode.None, HealthStatus.Degraded)]
    [InlineData(PgPoolerMode.Transaction, HealthStatus.Healthy)]
    [InlineData(PgPoolerMode.Session, HealthStatus.Healthy)]
    public async Task HealthCheck_BehindAPooler_IsDegradedUnlessThePoolerIsConfigured(PgPoolerMode mode, HealthStatus expected)
    {
        await using var pooled = NpgsqlDataSource.Create(Server.PoolerConnectionString);
        var installer = new PgSchemaInstaller(pooled, Schema, []);
        await installer.ApplyAsync(CancellationToken);
        var check = new PgFirstPostgresHealthCheck(installer, pooled, mode);

        var result = await check.CheckHealthAsync(new HealthCheckContext { Registration = new HealthCheckRegistration("postgresql", check, null, null) }, CancellationToken);

        Assert.Equal(expected, result.Status);
        if (expected == HealthStatus.Degraded)
        {
            Assert.Contains("PgFirst:Pooler", result.Description, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task HealthCheck_DirectConnection_IsHealthyWithoutPoolerSetting()
    {
        await using var direct = NpgsqlDataSource.Create(Server.DirectConnectionString);
        var installer = new PgSchemaInstaller(direct, Schema, []);
        await installer.ApplyAsync(CancellationToken);
        var check = new PgFirstPostgresHealthCheck(installer, direct, PgPoolerMode.None);

        var result = await check.CheckHealthAsync(new HealthCheckContext { Registration = new HealthCheckRegistration("postgresql", check, null, null) }, CancellationToken);

        Assert.Equal(HealthStatus.Healthy, result.Status);
    }

    [Theory]
    [InlineData("Pooler", "7", "PgFirst:Pooler")]
    [InlineData("ListenConnectionString", "Database=x", "PgFirst:ListenConnectionString names no Host")]
    [InlineData("ListenConnectionString", "Hots=x", "PgFirst:ListenConnectionString is not a valid")]
    public void Options_BadPoolerSettings_FailAtStartup(string key, string value, string message)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { [key] = value })
            .Build();
        var services = new ServiceCollection().AddPgFirst(configuration).Services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IOptions<PgFirstOptions>>().Value);

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }
}
