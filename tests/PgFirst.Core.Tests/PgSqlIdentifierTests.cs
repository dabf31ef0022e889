using PgFirst.Testing;

namespace PgFirst.Core.Tests;

public class PgSqlIdentifierTests(PostgresServer server) : PostgresTest(server)
{
    [Theory]
    [InlineData("plain")]
    [InlineData("Mixed Case")]
    [InlineData("odd \"name\"; DROP TABLE x; --")]
    public async Task Quote_NamesExactlyThatIdentifier_OnTheServer(string name)
    {
        await ExecuteAsync($"CREATE SCHEMA {PgSqlIdentifier.Quote(Schema)}");
        await ExecuteAsync($"CREATE TABLE {PgSqlIdentifier.Quote(Schema)}.{PgSqlIdentifier.Quote(name)} (x integer)");

        var names = await ScalarAsync<string[]>(
            "SELECT array_agg(relname::text) FROM pg_class WHERE relnamespace = to_regnamespace($1)", PgSqlIdentifier.Quote(Schema));

        Assert.Equal([name], names);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void Quote_NullOrEmpty_Throws(string? name) =>
        Assert.ThrowsAny<ArgumentException>(() => PgSqlIdentifier.Quote(name!));
}
