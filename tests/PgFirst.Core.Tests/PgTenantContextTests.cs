namespace PgFirst.Core.Tests;

public class PgTenantContextTests
{
    [Fact]
    public void TenantId_NoScope_IsTheDefaultTenant()
    {
        Assert.Equal("default", new PgTenantContext(PgFirstOptions.DefaultTenant).TenantId);
        Assert.Equal("acme", new PgTenantContext("acme").TenantId);
    }

    [Fact]
    public void BeginScope_Nested_RestoresTheOuterTenantOnDispose()
    {
        var context = new PgTenantContext("default");

        using (PgTenantContext.BeginScope("a"))
        {
            Assert.Equal("a", context.TenantId);
            using (PgTenantContext.BeginScope("b"))
            {
                Assert.Equal("b", context.TenantId);
            }

            Assert.Equal("a", context.TenantId);
        }

        Assert.Equal("default", context.TenantId);
    }

    [Fact]
    public async Task BeginScope_FlowsAcrossAwaitAndStaysOutOfOtherFlows()
    {
        var context = new PgTenantContext("default");
        using var entered = new SemaphoreSlim(0);
        using var release = new SemaphoreSlim(0);

        var inScope = Task.Run(async () =>
        {
            using var scope = PgTenantContext.BeginScope("tenant-1");
            await Task.Yield();
            entered.Release();
            await release.WaitAsync(TestContext.Current.CancellationToken);
            return context.TenantId;
        });
        await entered.WaitAsync(TestContext.Current.CancellationToken);

        Assert.Equal("default", context.TenantId);
        release.Release();
        Assert.Equal("tenant-1", await inScope);
    }

    [Fact]
    public void Dispose_Twice_DoesNotUndoAnOuterScope()
    {
        var context = new PgTenantContext("default");
        using var outer = PgTenantContext.BeginScope("outer");
        var inner = PgTenantContext.BeginScope("inner");

        inner.Dispose();
        inner.Dispose();

        Assert.Equal("outer", context.TenantId);
    }

    [Theory]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("has space")]
    [InlineData("tab\t")]
    [InlineData("semi;colon")]
    [InlineData("ünïcode")]
    [InlineData("slash/ed")]
    public void BeginScope_InvalidTenantId_ThrowsAndLeavesTheTenantUnchanged(string tenantId)
    {
        var context = new PgTenantContext("default");

        var error = Assert.Throws<ArgumentException>(() => PgTenantContext.BeginScope(tenantId));

        Assert.Contains("not a valid tenant id", error.Message, StringComparison.Ordinal);
        Assert.Equal("default", context.TenantId);
    }

    [Fact]
    public void Validate_NullOrTooLong_Throws()
    {
        Assert.Throws<ArgumentNullException>(() => PgTenantId.Validate(null, "tenantId"));
        Assert.Throws<ArgumentException>(() => PgTenantId.Validate(new string('a', PgTenantId.MaxLength + 1), "tenantId"));
        PgTenantId.Validate(new string('a', PgTenantId.MaxLength), "tenantId");
    }

    [Theory]
    [InlineData("acme")]
    [InlineData("ACME-corp_1.eu:west@x")]
    public void IsValid_AllowedCharacters_True(string tenantId)
    {
        Assert.True(PgTenantId.IsValid(tenantId));
    }

    [Fact]
    public void Constructor_InvalidDefaultTenant_Throws()
    {
        Assert.Throws<ArgumentException>(() => new PgTenantContext("no spaces please"));
    }
}
