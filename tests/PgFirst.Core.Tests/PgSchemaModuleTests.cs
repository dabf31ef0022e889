namespace PgFirst.Core.Tests;

public class PgSchemaModuleTests
{
    [Fact]
    public void Core_EmbedsTheBookkeepingScriptFromSqlFolder()
    {
        var script = Assert.Single(PgSchemaModule.Core.Scripts);

        Assert.Equal("sql/pgfirst/001_schema_version.sql", script.SourcePath);
        Assert.Equal(1, script.Version);
        Assert.Equal(64, script.Checksum.Length);
        // The embedded text is the file in sql/, not a copy.
        var repoFile = Path.Combine(FindRepoRoot(), "sql", "pgfirst", "001_schema_version.sql");
        Assert.Equal(File.ReadAllText(repoFile).Replace("\r\n", "\n", StringComparison.Ordinal), script.Template);
    }

    [Fact]
    public void FromAssembly_OrdersScriptsByVersion()
    {
        Assert.Equal([1, 2], TestModules.Items.Scripts.Select(s => s.Version));
    }

    [Fact]
    public void FromAssembly_NoScripts_Throws()
    {
        var error = Assert.Throws<InvalidOperationException>(() => PgSchemaModule.FromAssembly("nothing_here", typeof(PgSchemaModuleTests).Assembly));

        Assert.Contains("embeds no script", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Upper")]
    [InlineData("with-dash")]
    [InlineData("../etc")]
    public void FromAssembly_InvalidName_Throws(string name)
    {
        Assert.Throws<ArgumentException>(() => PgSchemaModule.FromAssembly(name, typeof(PgSchemaModuleTests).Assembly));
    }

    [Fact]
    public void Render_QuotesTheSchemaName()
    {
        var sql = TestModules.Items.Scripts[0].Render("abc");

        Assert.Contains("CREATE TABLE IF NOT EXISTS \"abc\".item", sql, StringComparison.Ordinal);
        Assert.DoesNotContain("{schema}", sql, StringComparison.Ordinal);
    }

    [Fact]
    public void FindScriptDefining_MatchesWholeNamesOnly()
    {
        Assert.Equal("001_item.sql", TestModules.Items.FindScriptDefining("item")?.FileName);
        Assert.Equal("001_item.sql", TestModules.Items.FindScriptDefining("item_delete_expired")?.FileName);
        Assert.Null(TestModules.Items.FindScriptDefining("ite"));
    }

    private static string FindRepoRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "PgFirst.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("PgFirst.sln not found above " + AppContext.BaseDirectory);
    }
}
