using System.Buffers.Binary;
using System.Text;

namespace PgSessions.Internal;

// The key/value pairs of one session and their wire form. Keys are ordinal (case-sensitive), as in ASP.NET Core's
// DistributedSession. Layout: 1 byte format (1), 4 bytes entry count, then per entry 2 bytes key length, UTF-8 key,
// 4 bytes value length, value; all big-endian.
internal sealed class SessionData
{
    private const byte Format = 1;
    private const int HeaderBytes = 5;
    private const int EntryOverheadBytes = 6;

    private readonly Dictionary<string, byte[]> _entries = new(StringComparer.Ordinal);

    public int Count => _entries.Count;

    public IEnumerable<string> Keys => _entries.Keys;

    // The serialized size, kept up to date so a Set that would overflow the limit is refused before it changes anything.
    public int SizeInBytes { get; private set; } = HeaderBytes;

    public static int EntrySize(string key, int valueLength) => EntryOverheadBytes + Encoding.UTF8.GetByteCount(key) + valueLength;

    public bool TryGetValue(string key, out byte[] value) => _entries.TryGetValue(key, out value!);

    public int SizeAfterSet(string key, int valueLength)
    {
        var size = SizeInBytes + EntrySize(key, valueLength);
        if (_entries.TryGetValue(key, out var old))
        {
            size -= EntrySize(key, old.Length);
        }

        return size;
    }

    public void Set(string key, byte[] value)
    {
        SizeInBytes = SizeAfterSet(key, value.Length);
        _entries[key] = value;
    }

    public bool Remove(string key)
    {
        if (!_entries.Remove(key, out var old))
        {
            return false;
        }

        SizeInBytes -= EntrySize(key, old.Length);
        return true;
    }

    public void Clear()
    {
        _entries.Clear();
        SizeInBytes = HeaderBytes;
    }

    public byte[] Serialize()
    {
        var buffer = new byte[SizeInBytes];
        buffer[0] = Format;
        BinaryPrimitives.WriteInt32BigEndian(buffer.AsSpan(1), _entries.Count);
        var position = HeaderBytes;
        foreach (var (key, value) in _entries)
        {
            var keyLength = Encoding.UTF8.GetBytes(key, buffer.AsSpan(position + 2));
            BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(position), checked((ushort)keyLength));
            position += 2 + keyLength;
            BinaryPrimitives.WriteInt32BigEndian(buffer.AsSpan(position), value.Length);
            value.CopyTo(buffer.AsSpan(position + 4));
            position += 4 + value.Length;
        }

        return buffer;
    }

    // Reads what Serialize wrote. Returns false (and leaves the data empty) for anything else, so a damaged row
    // costs the user their session, not an error page.
    public static bool TryDeserialize(ReadOnlySpan<byte> bytes, out SessionData data)
    {
        data = new SessionData();
        if (bytes.Length < HeaderBytes || bytes[0] != Format)
        {
            return false;
        }

        var count = BinaryPrimitives.ReadInt32BigEndian(bytes[1..]);
        var position = HeaderBytes;
        for (var i = 0; i < count; i++)
        {
            if (bytes.Length - position < 2)
            {
                return Fail(ref data);
            }

            int keyLength = BinaryPrimitives.ReadUInt16BigEndian(bytes[position..]);
            position += 2;
            if (bytes.Length - position < keyLength + 4)
            {
                return Fail(ref data);
            }

            var key = Encoding.UTF8.GetString(bytes.Slice(position, keyLength));
            position += keyLength;
            var valueLength = BinaryPrimitives.ReadInt32BigEndian(bytes[position..]);
            position += 4;
            if (valueLength < 0 || bytes.Length - position < valueLength)
            {
                return Fail(ref data);
            }

            data.Set(key, bytes.Slice(position, valueLength).ToArray());
            position += valueLength;
        }

        return position == bytes.Length || Fail(ref data);
    }

    private static bool Fail(ref SessionData data)
    {
        data = new SessionData();
        return false;
    }
}
