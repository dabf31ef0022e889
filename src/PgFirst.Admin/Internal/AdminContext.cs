using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Npgsql;
using PgFirst.Core;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace PgFirst.Admin.Internal;

// One command's run: where to connect, which schema, how to write, and the data source (created on first use).
internal sealed class AdminContext : IAsyncDisposable
{
    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    private NpgsqlDataSource? _dataSource;

    public AdminContext(ParseResult parse, AdminIO io)
    {
        IO = io;
        Json = parse.GetValue(GlobalOptions.Json);
        SchemaName = parse.GetValue(GlobalOptions.Schema) ?? io.Environment("PGFIRST_SCHEMA") ?? PgFirstOptions.DefaultSchemaName;
        if (!Regex.IsMatch(SchemaName, "^[a-z_][a-z0-9_]{0,62}$", RegexOptions.CultureInvariant))
        {
            throw AdminException.Usage($"'{SchemaName}' is not a valid schema name (lowercase letters, digits and _, starting with a letter or _).");
        }

        ConnectionString = ResolveConnectionString(parse.GetValue(GlobalOptions.Connection), io.Environment);
    }

    public AdminIO IO { get; }

    public bool Json { get; }

    public string SchemaName { get; }

    public string ConnectionString { get; }

    public NpgsqlDataSource DataSource => _dataSource ??= new NpgsqlDataSourceBuilder(ConnectionString).Build();

    // The stores' options: this schema, and transaction-pooler mode (no prepared statements), right direct or pooled.
    public PgFirstOptions StoreOptions => new() { SchemaName = SchemaName, Pooler = PgPoolerMode.Transaction };

    public string Where
    {
        get
        {
            var builder = new NpgsqlConnectionStringBuilder(ConnectionString);
            return $"{builder.Host}:{builder.Port} (database '{builder.Database ?? builder.Username}')";
        }
    }

    public static string ResolveConnectionString(string? option, Func<string, string?> environment)
    {
        var text = option ?? environment("PGFIRST_POSTGRES");
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(text ?? "");
        }
        catch (ArgumentException ex)
        {
            throw AdminException.Usage($"The connection string is not valid: {ex.Message}");
        }

        if (text is null)
        {
            // The libpq variables, as psql reads them.
            builder.Host = environment("PGHOST");
            if (environment("PGPORT") is { } port)
            {
                builder.Port = int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number is > 0 and < 65536
                    ? number
                    : throw AdminException.Usage($"PGPORT '{port}' is not a port number.");
            }

            builder.Username = environment("PGUSER");
            builder.Password = environment("PGPASSWORD");
            builder.Database = environment("PGDATABASE");
            if (builder.Host is null)
            {
                throw AdminException.Usage("No server to connect to: pass --connection \"Host=…;Username=…;Password=…;Database=…\", or set PGFIRST_POSTGRES, or PGHOST (with PGUSER, PGPASSWORD, PGDATABASE).");
            }
        }

        // Unless the connection string says otherwise: a quick verdict on an unreachable server, and room for a bulk
        // command (a purge, a clear, a schema apply waiting on the installer's lock) to finish.
        if (!Regex.IsMatch(text ?? "", @"(^|;)\s*(Timeout|Connect\s*Timeout)\s*=", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant))
        {
            builder.Timeout = 5;
        }

        if (!Regex.IsMatch(text ?? "", @"(^|;)\s*Command\s*Timeout\s*=", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant))
        {
            builder.CommandTimeout = 300;
        }

        // The tool keeps no session state and prepares nothing, so it is safe behind a transaction pooler (PgBouncer)
        // as well as direct: no reset on close, no automatic preparation, stores in transaction-pooler mode.
        builder.NoResetOnClose = true;
        builder.MaxAutoPrepare = 0;
        builder.ApplicationName ??= "pgfirst-admin";
        return builder.ConnectionString;
    }

    public void WriteJson<T>(T value) => IO.Out.WriteLine(JsonSerializer.Serialize(value, JsonOptions));

    // The result of a command that changes something: its JSON for scripts, or one line for people.
    public void Report<T>(T json, string line)
    {
        if (Json)
        {
            WriteJson(json);
        }
        else
        {
            Line(line);
        }
    }

    public void Write(IRenderable renderable) => IO.Console.Write(renderable);

    public void Line(string text) => IO.Console.WriteLine(text);

    public void Markup(string markup) => IO.Console.MarkupLine(markup);

    public static Table Table(params string[] headers)
    {
        var table = new Table().Border(TableBorder.Rounded);
        foreach (var header in headers)
        {
            var column = new TableColumn(new Text(header, new Style(decoration: Decoration.Bold)));
            if (header.StartsWith('#'))
            {
                column = new TableColumn(new Text(header[1..], new Style(decoration: Decoration.Bold))).RightAligned();
            }

            table.AddColumn(column);
        }

        return table;
    }

    public async ValueTask DisposeAsync()
    {
        if (_dataSource is not null)
        {
            await _dataSource.DisposeAsync().ConfigureAwait(false);
        }
    }
}
