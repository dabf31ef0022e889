using System.Buffers;
using System.Text;
using System.Text.Json;

namespace PgCache.Internal;

internal enum NearCacheMessageKind
{
    Keys,
    Tag,
    Tenant,
    Ping,
}

// One invalidation (or heartbeat) as it travels on the channel: small JSON, so any key text survives NOTIFY (JSON
// escapes control characters and lone surrogates) and the payload is readable in psql.
//   {"s":source,"w":sent-utc-ticks,"t":tenant,"k":[keys]}   these keys of the tenant changed
//   {"s":source,"w":ticks,"t":tenant,"g":tag}                the tenant's entries with this tag were removed
//   {"s":source,"w":ticks,"t":tenant}                        anything of the tenant may have changed
//   {"s":source!,"w":ticks,"p":epoch,"n":stopwatch-ticks}    a heartbeat (only its sender acts on it)
// "s" always comes first, so a receiver recognises its own invalidations by their first bytes.
internal readonly record struct NearCacheMessage(NearCacheMessageKind Kind, string Source, long SentUtcTicks, string? Tenant, string[]? Keys, string? Tag, long Epoch, long Timestamp)
{
    // NOTIFY's payload limit is 7,999 bytes; a key list that would not fit (or is long) becomes a tenant flush.
    public const int MaxPayloadBytes = 7_900;
    public const int MaxKeysPerMessage = 256;

    private static readonly JsonWriterOptions WriterOptions = new() { Indented = false, SkipValidation = true };

    public static string ForKeys(string source, string tenant, IReadOnlyList<string> keys)
    {
        if (keys.Count > MaxKeysPerMessage)
        {
            return ForTenant(source, tenant);
        }

        var payload = Write(source, w =>
        {
            w.WriteString("t"u8, tenant);
            w.WriteStartArray("k"u8);
            for (var i = 0; i < keys.Count; i++)
            {
                w.WriteStringValue(keys[i]);
            }

            w.WriteEndArray();
        });
        return Encoding.UTF8.GetByteCount(payload) <= MaxPayloadBytes ? payload : ForTenant(source, tenant);
    }

    public static string ForTag(string source, string tenant, string tag) => Write(source, w =>
    {
        w.WriteString("t"u8, tenant);
        w.WriteString("g"u8, tag);
    });

    public static string ForTenant(string source, string tenant) => Write(source, w => w.WriteString("t"u8, tenant));

    public static string ForPing(string source, long epoch, long timestamp) => Write(source, w =>
    {
        w.WriteNumber("p"u8, epoch);
        w.WriteNumber("n"u8, timestamp);
    });

    public static bool TryParse(string payload, out NearCacheMessage message)
    {
        message = default;
        try
        {
            var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(payload));
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            string? source = null, tenant = null, tag = null;
            List<string>? keys = null;
            long sent = 0, epoch = 0, timestamp = 0;
            var ping = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.ValueSpan.Length == 1 ? (char)reader.ValueSpan[0] : '?';
                reader.Read();
                switch (name)
                {
                    case 's': source = reader.GetString(); break;
                    case 'w': sent = reader.GetInt64(); break;
                    case 't': tenant = reader.GetString(); break;
                    case 'g': tag = reader.GetString(); break;
                    case 'p': epoch = reader.GetInt64(); ping = true; break;
                    case 'n': timestamp = reader.GetInt64(); break;
                    case 'k':
                        keys = [];
                        while (reader.Read() && reader.TokenType == JsonTokenType.String)
                        {
                            keys.Add(reader.GetString()!);
                        }

                        break;
                    default:
                        reader.Skip();
                        break;
                }
            }

            if (source is null)
            {
                return false;
            }

            if (ping)
            {
                message = new(NearCacheMessageKind.Ping, source, sent, null, null, null, epoch, timestamp);
                return true;
            }

            if (tenant is null)
            {
                return false;
            }

            var kind = keys is not null ? NearCacheMessageKind.Keys : tag is not null ? NearCacheMessageKind.Tag : NearCacheMessageKind.Tenant;
            message = new(kind, source, sent, tenant, keys?.ToArray(), tag, 0, 0);
            return true;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            return false;
        }
    }

    private static string Write(string source, Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("s"u8, source);
            writer.WriteNumber("w"u8, TimeProvider.System.GetUtcNow().UtcTicks);
            body(writer);
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
