using PgFirst.Core;

namespace PgFirst.Core.Tests;

internal static class TestModules
{
    private static readonly Lazy<PgSchemaModule> ItemsModule = new(() => PgSchemaModule.FromAssembly("testmod", typeof(TestModules).Assembly));
    private static readonly Lazy<PgSchemaModule> BrokenModule = new(() => PgSchemaModule.FromAssembly("testbroken", typeof(TestModules).Assembly));

    /// <summary>Two good scripts: a table with an expiry and its cleanup function, then a column.</summary>
    public static PgSchemaModule Items => ItemsModule.Value;

    /// <summary>A good script, then one whose second statement fails.</summary>
    public static PgSchemaModule Broken => BrokenModule.Value;

    public static PgMaintenanceTask ItemCleanup { get; } = new(Items, "item_delete_expired");
}
