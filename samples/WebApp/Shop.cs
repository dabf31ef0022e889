using Dapper;
using Npgsql;

namespace WebApp;

public sealed record Product(int Id, string Sku, string Name, string Description, int PriceCents)
{
    public string Price => FormatPrice(PriceCents);

    public static string FormatPrice(long cents) => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"€{cents / 100m:0.00}");
}

public enum OrderStep
{
    Confirmed,
    Invoiced,
}

public sealed record CartLine(int ProductId, int Quantity);

public sealed record OrderLine(int ProductId, string Name, int Quantity, int PriceCents);

public sealed record Order(long Id, string UserId, IReadOnlyList<OrderLine> Lines, long TotalCents, DateTimeOffset PlacedAt, DateTimeOffset? ConfirmedAt, DateTimeOffset? InvoicedAt);

// The demo creates and seeds its own tables at start-up, after PgFirst applied its schema.
public sealed class DemoShopStartup(DemoShop shop) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => shop.EnsureCreatedAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

public sealed class ProductNotFoundException(int id) : Exception($"Product {id} does not exist.");

// The demo shop's own data (products and orders), in the PgFirst schema so that each test run keeps to its own. Created
// and seeded at start-up, by DemoShopStartup.
public sealed class DemoShop(string schemaName, NpgsqlDataSource dataSource) : IDisposable
{
    private static readonly (string Sku, string Name, string Description, int PriceCents)[] Seed =
    [
        ("tea-earl-grey", "Earl Grey tea", "Black tea with bergamot, 250 g loose leaf.", 890),
        ("tea-sencha", "Sencha", "Japanese green tea, first flush, 100 g.", 1250),
        ("coffee-ethiopia", "Ethiopia Yirgacheffe", "Light roast coffee beans, 500 g.", 1690),
        ("coffee-brazil", "Brazil Cerrado", "Medium roast coffee beans, 1 kg.", 2490),
        ("mug-stoneware", "Stoneware mug", "Hand-glazed, 350 ml.", 1400),
        ("kettle-gooseneck", "Gooseneck kettle", "Temperature control, 0.9 l.", 7900),
        ("grinder-burr", "Burr grinder", "Conical steel burrs, 40 settings.", 12900),
        ("teapot-cast-iron", "Cast iron teapot", "Enamelled inside, 0.8 l, with infuser.", 4500),
    ];

    private readonly SemaphoreSlim _create = new(1, 1);
    private volatile bool _created;

    public string Products { get; } = $"\"{schemaName}\".shop_product";

    public string Orders { get; } = $"\"{schemaName}\".shop_order";

    public void Dispose() => _create.Dispose();

    public async Task EnsureCreatedAsync(CancellationToken cancellationToken = default)
    {
        if (_created)
        {
            return;
        }

        await _create.WaitAsync(cancellationToken);
        try
        {
            if (!_created)
            {
                await using var create = dataSource.CreateCommand(CreateSql());
                await create.ExecuteNonQueryAsync(cancellationToken);
                await using var seed = dataSource.CreateCommand(
                    $"INSERT INTO {Products} (sku, name, description, price_cents) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) ON CONFLICT (sku) DO NOTHING");
                seed.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. Seed.Select(s => s.Sku)] });
                seed.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. Seed.Select(s => s.Name)] });
                seed.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. Seed.Select(s => s.Description)] });
                seed.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = [.. Seed.Select(s => s.PriceCents)] });
                await seed.ExecuteNonQueryAsync(cancellationToken);
                _created = true;
            }
        }
        finally
        {
            _create.Release();
        }
    }

    private string CreateSql() => $"""
        CREATE SCHEMA IF NOT EXISTS "{schemaName}";
        CREATE TABLE IF NOT EXISTS {Products} (
            id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            sku         text NOT NULL UNIQUE,
            name        text NOT NULL,
            description text NOT NULL,
            price_cents integer NOT NULL CHECK (price_cents > 0),
            updated_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE IF NOT EXISTS {Orders} (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id      text NOT NULL,
            lines        jsonb NOT NULL,
            total_cents  bigint NOT NULL,
            placed_at    timestamptz NOT NULL DEFAULT now(),
            confirmed_at timestamptz,
            invoiced_at  timestamptz
        );
        CREATE INDEX IF NOT EXISTS shop_order_user_idx ON {Orders} (user_id, id DESC);
        """;

    // The shop's own reads and writes go through Dapper, as most .NET teams write theirs; PgFirst's modules use their
    // own prepared SQL. Column aliases match the records' constructor parameters.
    private const string ProductColumns = "id AS Id, sku AS Sku, name AS Name, description AS Description, price_cents AS PriceCents";

    public async Task<int[]> ListProductIdsAsync(CancellationToken cancellationToken)
    {
        await EnsureCreatedAsync(cancellationToken);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return [.. await connection.QueryAsync<int>(new CommandDefinition($"SELECT id FROM {Products} ORDER BY id", cancellationToken: cancellationToken))];
    }

    public async Task<IReadOnlyList<Product>> LoadProductsAsync(IReadOnlyCollection<int> ids, CancellationToken cancellationToken)
    {
        await EnsureCreatedAsync(cancellationToken);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var products = await connection.QueryAsync<Product>(new CommandDefinition(
            $"SELECT {ProductColumns} FROM {Products} WHERE id = ANY(@ids) ORDER BY id", new { ids = ids.ToArray() }, cancellationToken: cancellationToken));
        return [.. products];
    }

    public async Task<Product> LoadProductAsync(int id, CancellationToken cancellationToken) =>
        (await LoadProductsAsync([id], cancellationToken)).SingleOrDefault() ?? throw new ProductNotFoundException(id);

    public async Task<bool> UpdateProductAsync(int id, string name, int priceCents, CancellationToken cancellationToken)
    {
        await EnsureCreatedAsync(cancellationToken);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await connection.ExecuteAsync(new CommandDefinition(
            $"UPDATE {Products} SET name = @name, price_cents = @priceCents, updated_at = now() WHERE id = @id", new { id, name, priceCents }, cancellationToken: cancellationToken)) == 1;
    }

    // Inserts the order inside the caller's transaction (a Dapper write on its connection), so that its follow-up jobs,
    // enqueued on the same transaction, commit with it or not at all.
    public async Task<long> InsertOrderAsync(NpgsqlTransaction transaction, string userId, IReadOnlyList<OrderLine> lines, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        return await transaction.Connection!.ExecuteScalarAsync<long>(new CommandDefinition(
            $"INSERT INTO {Orders} (user_id, lines, total_cents) VALUES (@userId, @lines::jsonb, @total) RETURNING id",
            new
            {
                userId,
                lines = System.Text.Json.JsonSerializer.Serialize(lines, ShopJson.Default.IReadOnlyListOrderLine),
                total = lines.Sum(l => (long)l.PriceCents * l.Quantity),
            },
            transaction,
            cancellationToken: cancellationToken));
    }

    public async Task<Order?> GetOrderAsync(long id, CancellationToken cancellationToken) =>
        (await QueryOrdersAsync("WHERE id = @id", id, 1, cancellationToken)).SingleOrDefault();

    public async Task<IReadOnlyList<Order>> RecentOrdersAsync(int limit, CancellationToken cancellationToken) =>
        await QueryOrdersAsync(string.Empty, null, limit, cancellationToken);

    private sealed record OrderRow(long Id, string UserId, string Lines, long TotalCents, DateTime PlacedAt, DateTime? ConfirmedAt, DateTime? InvoicedAt);

    private async Task<List<Order>> QueryOrdersAsync(string where, long? id, int limit, CancellationToken cancellationToken)
    {
        await EnsureCreatedAsync(cancellationToken);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var rows = await connection.QueryAsync<OrderRow>(new CommandDefinition(
            $"""
            SELECT id AS Id, user_id AS UserId, lines::text AS Lines, total_cents AS TotalCents,
                   placed_at AS PlacedAt, confirmed_at AS ConfirmedAt, invoiced_at AS InvoicedAt
            FROM {Orders} {where} ORDER BY id DESC LIMIT @limit
            """,
            new { id, limit },
            cancellationToken: cancellationToken));
        return [.. rows.Select(r => new Order(
            r.Id,
            r.UserId,
            System.Text.Json.JsonSerializer.Deserialize(r.Lines, ShopJson.Default.IReadOnlyListOrderLine) ?? [],
            r.TotalCents,
            Utc(r.PlacedAt),
            r.ConfirmedAt is { } confirmed ? Utc(confirmed) : null,
            r.InvoicedAt is { } invoiced ? Utc(invoiced) : null))];
    }

    // timestamptz reads as a UTC DateTime (Kind Utc) in Npgsql; Dapper maps DateTime, not DateTimeOffset.
    private static DateTimeOffset Utc(DateTime value) => new(DateTime.SpecifyKind(value, DateTimeKind.Utc));

    // A job handler records its outcome on the order and, on PostgreSQL, completes its job in the same transaction, so
    // the outcome is recorded exactly once even if a worker dies mid-job.
    public async Task MarkAsync(OrderStep step, long orderId, PgQueue.JobContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var column = step switch
        {
            OrderStep.Confirmed => "confirmed_at",
            OrderStep.Invoiced => "invoiced_at",
            _ => throw new ArgumentOutOfRangeException(nameof(step), step, "Unknown order step."),
        };
        await EnsureCreatedAsync(cancellationToken);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await connection.ExecuteAsync(new CommandDefinition($"UPDATE {Orders} SET {column} = now() WHERE id = @orderId", new { orderId }, transaction, cancellationToken: cancellationToken));
        try
        {
            await context.CompleteAsync(transaction, cancellationToken);
        }
        catch (NotSupportedException)
        {
            // The queue runs on Redis: the job completes when the handler returns (at least once).
        }

        await transaction.CommitAsync(cancellationToken);
    }
}

[System.Text.Json.Serialization.JsonSourceGenerationOptions(System.Text.Json.JsonSerializerDefaults.Web)]
[System.Text.Json.Serialization.JsonSerializable(typeof(IReadOnlyList<OrderLine>))]
[System.Text.Json.Serialization.JsonSerializable(typeof(Product))]
[System.Text.Json.Serialization.JsonSerializable(typeof(int[]))]
[System.Text.Json.Serialization.JsonSerializable(typeof(List<CartLine>))]
public sealed partial class ShopJson : System.Text.Json.Serialization.JsonSerializerContext;
