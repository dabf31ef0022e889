using Npgsql;
using PgFirst.Testing;

namespace PgFirst.Core.Tests;

public class PgSchemaErrorsTests(PostgresServer server) : PostgresTest(server)
{
    private async Task<PostgresException> FailAsync(string sql) =>
        await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(sql));

    [Fact]
    public async Task TryTranslate_MissingTable_NamesTheScriptThatCreatesIt()
    {
        await new PgSchemaInstaller(DataSource, Schema, []).ApplyAsync(CancellationToken);
        var error = await FailAsync($"SELECT * FROM \"{Schema}\".item");

        var translated = PgSchemaErrors.TryTranslate(error, TestModules.Items, Schema);

        Assert.NotNull(translated);
        Assert.Equal("sql/testmod/001_item.sql", translated.Script?.SourcePath);
        Assert.Contains($"table {Schema}.item", translated.Message, StringComparison.Ordinal);
        Assert.Contains("sql/testmod/001_item.sql", translated.Message, StringComparison.Ordinal);
        Assert.Same(error, translated.InnerException);
    }

    [Fact]
    public async Task TryTranslate_MissingSchema_NamesTheFirstScript()
    {
        var error = await FailAsync($"SELECT \"{Schema}\".item_delete_expired(1, now())");

        var translated = PgSchemaErrors.TryTranslate(error, TestModules.Items, Schema);

        Assert.NotNull(translated);
        Assert.Contains("sql/testmod/", translated.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TryTranslate_MissingColumn_NamesTheLatestScript()
    {
        await CreateSchemaAsync();
        await ExecuteAsync($"CREATE TABLE \"{Schema}\".item (id int)");
        var error = await FailAsync($"SELECT note FROM \"{Schema}\".item");

        var translated = PgSchemaErrors.TryTranslate(error, TestModules.Items, Schema);

        Assert.Equal("sql/testmod/002_item_note.sql", translated?.Script?.SourcePath);
    }

    [Fact]
    public async Task TryTranslate_OtherErrors_ReturnsNull()
    {
        var error = await FailAsync("SELECT 1 / 0");

        Assert.Null(PgSchemaErrors.TryTranslate(error, TestModules.Items, Schema));
    }
}
