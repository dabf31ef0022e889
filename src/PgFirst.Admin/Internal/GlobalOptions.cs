using System.CommandLine;

namespace PgFirst.Admin.Internal;

// The options every command takes (recursive on the root).
internal static class GlobalOptions
{
    public static readonly Option<string?> Connection = new("--connection", "-c")
    {
        Description = "An Npgsql connection string. Default: $PGFIRST_POSTGRES, else the standard PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE variables.",
        Recursive = true,
    };

    public static readonly Option<string?> Schema = new("--schema", "-s")
    {
        Description = "The PgFirst schema (PgFirst:SchemaName). Default: $PGFIRST_SCHEMA, else pgfirst.",
        Recursive = true,
    };

    public static readonly Option<bool> Json = new("--json")
    {
        Description = "Write the result as JSON (read commands), for scripts.",
        Recursive = true,
    };

    public static readonly Option<bool> Yes = new("--yes", "-y")
    {
        Description = "Do it. Without --yes a destructive command prints what it would do, changes nothing and exits 5.",
    };

    public static readonly Option<string?> Tenant = new("--tenant", "-t")
    {
        Description = "The tenant (PgFirst tenant id).",
    };
}
