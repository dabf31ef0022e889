using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.Repositories;
using Npgsql;
using NpgsqlTypes;
using PgFirst.Core;

namespace PgSessions;

/// <summary>
/// An ASP.NET Core Data Protection key repository in <c>{schema}.data_protection_key</c>, so every instance of the
/// app protects and reads session and authentication cookies with one key ring, without a shared file system.
/// Register it with <c>services.AddDataProtection().PersistKeysToPgFirst()</c>.
/// </summary>
/// <remarks>
/// <see cref="IXmlRepository"/> is synchronous, so this class uses Npgsql's synchronous API; Data Protection calls it
/// only when it (re)loads its key ring (at start, then about once a day) or creates a key. The keys are stored as
/// Data Protection hands them over: configure key encryption at rest (<c>ProtectKeysWith…</c>) if the database's
/// readers must not be able to forge cookies.
/// </remarks>
public sealed class PgXmlRepository : IXmlRepository
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly string _schemaName;
    private readonly string _select;
    private readonly string _insert;

    /// <summary>
    /// Initializes a new instance of the <see cref="PgXmlRepository"/> class. Does no I/O.
    /// </summary>
    /// <param name="dataSource">The data source; not disposed by the repository.</param>
    /// <param name="schemaName">The PgFirst schema that holds <c>data_protection_key</c> (script <c>pgsessions/002</c>).</param>
    public PgXmlRepository(NpgsqlDataSource dataSource, string schemaName)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentException.ThrowIfNullOrEmpty(schemaName);
        _dataSource = dataSource;
        _schemaName = schemaName;
        var schema = PgSqlIdentifier.Quote(schemaName);
        _select = $"SELECT xml FROM {schema}.data_protection_key ORDER BY id";
        _insert = $"INSERT INTO {schema}.data_protection_key (friendly_name, xml) VALUES ($1, $2)";
    }

    /// <inheritdoc />
    /// <exception cref="PgFirstSchemaException">The table does not exist (the schema was not applied).</exception>
    public IReadOnlyCollection<XElement> GetAllElements()
    {
        try
        {
            using var connection = _dataSource.OpenConnection();
            using var command = new NpgsqlCommand(_select, connection);
            using var reader = command.ExecuteReader();
            var elements = new List<XElement>();
            while (reader.Read())
            {
                elements.Add(XElement.Parse(reader.GetString(0)));
            }

            return elements;
        }
        catch (PostgresException ex) when (PgSchemaErrors.TryTranslate(ex, PostgresSessionBackend.SchemaModule, _schemaName) is { } schemaError)
        {
            throw schemaError;
        }
    }

    /// <inheritdoc />
    /// <exception cref="PgFirstSchemaException">The table does not exist (the schema was not applied).</exception>
    public void StoreElement(XElement element, string friendlyName)
    {
        ArgumentNullException.ThrowIfNull(element);
        try
        {
            using var connection = _dataSource.OpenConnection();
            using var command = new NpgsqlCommand(_insert, connection);
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)friendlyName ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = element.ToString(SaveOptions.DisableFormatting), NpgsqlDbType = NpgsqlDbType.Text });
            command.ExecuteNonQuery();
        }
        catch (PostgresException ex) when (PgSchemaErrors.TryTranslate(ex, PostgresSessionBackend.SchemaModule, _schemaName) is { } schemaError)
        {
            throw schemaError;
        }
    }
}
