using Npgsql;
using NpgsqlTypes;

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

    public async Task<int[]> ListProductIdsAsync(CancellationToken cancellationToken)
    {
        await EnsureCreatedAsync(cancellationToken);
        await using var command = dataSource.CreateCommand($"SELECT id FROM {Products} ORDER BY id");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var ids = new List<int>();
        while (await reader.ReadAsync(cancellationToken))
        {
            ids.Add(reader.GetInt32(0));
        }

        return [.. ids];
    }

    public async Task<IReadOnlyList<Product>> LoadProductsAsync(IReadOnlyCollection<int> ids, CancellationToken cancellationToken)
    {
        await EnsureCreatedAsync(cancellationToken);
        await using var command = dataSource.CreateCommand($"SELECT id, sku, name, description, price_cents FROM {Products} WHERE id = ANY($1) ORDER BY id");
        command.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = [.. ids] });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var products = new List<Product>();
        while (await reader.ReadAsync(cancellationToken))
        {
            products.Add(new Product(reader.GetInt32(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt32(4)));
        }

        return products;
    }

    public async Task<Product> LoadProductAsync(int id, CancellationToken cancellationToken) =>
        (await LoadProductsAsync([id], cancellationToken)).SingleOrDefault() ?? throw new ProductNotFoundException(id);

    public async Task<bool> UpdateProductAsync(int id, string name, int priceCents, CancellationToken cancellationToken)
    {
        await EnsureCreatedAsync(cancellationToken);
        await using var command = dataSource.CreateCommand($"UPDATE {Products} SET name = $2, price_cents = $3, updated_at = now() WHERE id = $1");
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = id });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = priceCents });
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    // Inserts the order inside the caller's transaction, so that its follow-up jobs commit with it.
    public async Task<long> InsertOrderAsync(NpgsqlTransaction transaction, string userId, IReadOnlyList<OrderLine> lines, CancellationToken cancellationToken)
    {
        await using var insert = new NpgsqlCommand($"INSERT INTO {Orders} (user_id, lines, total_cents) VALUES ($1, $2, $3) RETURNING id", transaction.Connection, transaction);
        insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = userId });
        insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = System.Text.Json.JsonSerializer.Serialize(lines, ShopJson.Default.IReadOnlyListOrderLine), NpgsqlDbType = NpgsqlDbType.Jsonb });
        insert.Parameters.Add(new NpgsqlParameter<long> { TypedValue = lines.Sum(l => (long)l.PriceCents * l.Quantity) });
        return (long)(await insert.ExecuteScalarAsync(cancellationToken))!;
    }

    public async Task<Order?> GetOrderAsync(long id, CancellationToken cancellationToken) =>
        (await QueryOrdersAsync("WHERE id = $1", id, 1, cancellationToken)).SingleOrDefault();

    public async Task<IReadOnlyList<Order>> RecentOrdersAsync(int limit, CancellationToken cancellationToken) =>
        await QueryOrdersAsync(string.Empty, null, limit, cancellationToken);

    private async Task<List<Order>> QueryOrdersAsync(string where, long? id, int limit, CancellationToken cancellationToken)
    {
        await EnsureCreatedAsync(cancellationToken);
        await using var command = dataSource.CreateCommand(
            $"SELECT id, user_id, lines::text, total_cents, placed_at, confirmed_at, invoiced_at FROM {Orders} {where} ORDER BY id DESC LIMIT {limit}");
        if (id is { } value)
        {
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = value });
        }

        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var orders = new List<Order>();
        while (await reader.ReadAsync(cancellationToken))
        {
            orders.Add(new Order(
                reader.GetInt64(0),
                reader.GetString(1),
                System.Text.Json.JsonSerializer.Deserialize(reader.GetString(2), ShopJson.Default.IReadOnlyListOrderLine) ?? [],
                reader.GetInt64(3),
                reader.GetFieldValue<DateTimeOffset>(4),
                reader.IsDBNull(5) ? null : reader.GetFieldValue<DateTimeOffset>(5),
                reader.IsDBNull(6) ? null : reader.GetFieldValue<DateTimeOffset>(6)));
        }

        return orders;
    }

    // A job handler records its outcome on the order and, on PostgreSQL, completes its job in the same transaction, so
    // the outcome is recorded exactly once even if a worker dies mid-job.
    public async Task MarkAsync(OrderStep step, long orderId, PgQueue.JobContext context, CancellationToken cancellationToken)
    {
        var column = step switch
        {
            OrderStep.Confirmed => "confirmed_at",
            OrderStep.Invoiced => "invoiced_at",
            _ => throw new ArgumentOutOfRangeException(nameof(step), step, "Unknown order step."),
        };
        await EnsureCreatedAsync(cancellationToken);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using var update = new NpgsqlCommand($"UPDATE {Orders} SET {column} = now() WHERE id = $1", connection, transaction);
        update.Parameters.Add(new NpgsqlParameter<long> { TypedValue = orderId });
        await update.ExecuteNonQueryAsync(cancellationToken);
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
