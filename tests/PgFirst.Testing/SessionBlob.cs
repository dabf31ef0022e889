using System.Buffers.Binary;
using System.Text;

namespace PgFirst.Testing;

/// <summary>
/// The serialized form of a session's key/value pairs, written and read independently of PgSessions' own code (format 1:
/// 1 byte format, 4 bytes entry count, then per entry 2 bytes key length, UTF-8 key, 4 bytes value length, value; all
/// big-endian), so backend tests can check what a merge stored.
/// </summary>
public static class SessionBlob
{
    public static byte[] Of(params (string Key, byte[] Value)[] entries)
    {
        var buffer = new List<byte> { 1 };
        var count = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(count, entries.Length);
        buffer.AddRange(count);
        foreach (var (key, value) in entries)
        {
            var keyBytes = Encoding.UTF8.GetBytes(key);
            var length = new byte[2];
            BinaryPrimitives.WriteUInt16BigEndian(length, (ushort)keyBytes.Length);
            buffer.AddRange(length);
            buffer.AddRange(keyBytes);
            var valueLength = new byte[4];
            BinaryPrimitives.WriteInt32BigEndian(valueLength, value.Length);
            buffer.AddRange(valueLength);
            buffer.AddRange(value);
        }

        return [.. buffer];
    }

    /// <summary>Reads a blob into key → value (hex), sorted by key, throwing on anything malformed.</summary>
    public static SortedDictionary<string, string> Read(byte[] blob)
    {
        if (blob.Length < 5 || blob[0] != 1)
        {
            throw new FormatException("Not a format-1 session blob.");
        }

        var entries = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var count = BinaryPrimitives.ReadInt32BigEndian(blob.AsSpan(1));
        var position = 5;
        for (var i = 0; i < count; i++)
        {
            int keyLength = BinaryPrimitives.ReadUInt16BigEndian(blob.AsSpan(position));
            var key = Encoding.UTF8.GetString(blob, position + 2, keyLength);
            position += 2 + keyLength;
            var valueLength = BinaryPrimitives.ReadInt32BigEndian(blob.AsSpan(position));
            entries.Add(key, Convert.ToHexString(blob, position + 4, valueLength));
            position += 4 + valueLength;
        }

        if (position != blob.Length)
        {
            throw new FormatException($"{blob.Length - position} bytes after the last entry.");
        }

        return entries;
    }
}
