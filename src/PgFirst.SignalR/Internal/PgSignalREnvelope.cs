using System.Text;
using Microsoft.AspNetCore.SignalR;

namespace PgFirst.SignalR.Internal;

/// <summary>What a backplane message is for.</summary>
internal enum EnvelopeKind : byte
{
    /// <summary>A hub invocation for some of the connections (all, some ids, groups, users), minus an except list.</summary>
    Invocation = 1,

    /// <summary>Add a connection to a group or remove it, done by the instance that has the connection, which acknowledges.</summary>
    GroupCommand = 2,

    /// <summary>The acknowledgement of a group command or of an accepted client invocation, for the instance that asked.</summary>
    Ack = 3,

    /// <summary>An invocation that expects a client result, for the instance that has the connection.</summary>
    ClientInvocation = 4,

    /// <summary>A client's result (or an error) for the instance whose caller awaits it.</summary>
    ClientResult = 5,
}

/// <summary>What a client result carries.</summary>
internal enum ResultStatus : byte
{
    /// <summary>The client's completion message, in <see cref="PgSignalREnvelope.ProtocolName"/>.</summary>
    Completed = 0,

    /// <summary>The connection closed before the client answered.</summary>
    Disconnected = 1,
}

/// <summary>Who an invocation is for.</summary>
internal enum TargetKind : byte
{
    All = 1,
    Connections = 2,
    Groups = 3,
    Users = 4,
}

/// <summary>
/// A backplane message: a small binary envelope (version 1) around the hub message already serialized by every hub
/// protocol in use, so a receiving instance writes the bytes each of its connections needs without serializing again.
/// </summary>
internal sealed class PgSignalREnvelope
{
    private const byte Version = 1;

    public EnvelopeKind Kind { get; init; }

    /// <summary>The instance that sent it.</summary>
    public Guid Sender { get; init; }

    /// <summary>The one instance it is for (acks and client results), else empty.</summary>
    public Guid Recipient { get; init; }

    public TargetKind Target { get; init; }

    public IReadOnlyList<string> Targets { get; init; } = [];

    public IReadOnlyList<string> Excluded { get; init; } = [];

    public IReadOnlyList<SerializedMessage> Messages { get; init; } = [];

    /// <summary>The id of a group command or client invocation that an ack answers.</summary>
    public long AckId { get; init; }

    /// <summary>True: add to the group; false: remove.</summary>
    public bool AddToGroup { get; init; }

    public string ConnectionId { get; init; } = "";

    public string GroupName { get; init; } = "";

    public string InvocationId { get; init; } = "";

    /// <summary>What a client result carries.</summary>
    public ResultStatus Status { get; init; }

    /// <summary>A client result's error (the client's, or why there is none), else empty.</summary>
    public string Error { get; init; } = "";

    /// <summary>A client result's protocol (the one its bytes are in), or empty with an error.</summary>
    public string ProtocolName { get; init; } = "";

    /// <summary>A client result's completion message in <see cref="ProtocolName"/>.</summary>
    public ReadOnlyMemory<byte> Result { get; init; }

    public byte[] ToBytes()
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(Version);
            writer.Write((byte)Kind);
            writer.Write(Sender.ToByteArray());
            writer.Write(Recipient.ToByteArray());
            switch (Kind)
            {
                case EnvelopeKind.Invocation:
                    writer.Write((byte)Target);
                    WriteStrings(writer, Targets);
                    WriteStrings(writer, Excluded);
                    WriteMessages(writer, Messages);
                    break;
                case EnvelopeKind.GroupCommand:
                    writer.Write(AckId);
                    writer.Write(AddToGroup);
                    writer.Write(ConnectionId);
                    writer.Write(GroupName);
                    break;
                case EnvelopeKind.Ack:
                    writer.Write(AckId);
                    break;
                case EnvelopeKind.ClientInvocation:
                    writer.Write(AckId);
                    writer.Write(InvocationId);
                    writer.Write(ConnectionId);
                    WriteMessages(writer, Messages);
                    break;
                case EnvelopeKind.ClientResult:
                    writer.Write(InvocationId);
                    writer.Write((byte)Status);
                    writer.Write(Error);
                    writer.Write(ProtocolName);
                    writer.Write7BitEncodedInt(Result.Length);
                    writer.Write(Result.Span);
                    break;
                default:
                    throw new InvalidOperationException($"Unknown envelope kind {Kind}.");
            }
        }

        return stream.ToArray();
    }

    /// <summary>Reads an envelope.</summary>
    /// <exception cref="InvalidDataException">Not an envelope of a version this build reads.</exception>
    public static PgSignalREnvelope Read(byte[] bytes)
    {
        try
        {
            using var reader = new BinaryReader(new MemoryStream(bytes, writable: false), Encoding.UTF8);
            var version = reader.ReadByte();
            if (version != Version)
            {
                throw new InvalidDataException($"A backplane message of version {version}; this build reads version {Version}.");
            }

            var kind = (EnvelopeKind)reader.ReadByte();
            var sender = new Guid(reader.ReadBytes(16));
            var recipient = new Guid(reader.ReadBytes(16));
            return kind switch
            {
                EnvelopeKind.Invocation => new PgSignalREnvelope
                {
                    Kind = kind,
                    Sender = sender,
                    Recipient = recipient,
                    Target = (TargetKind)reader.ReadByte(),
                    Targets = ReadStrings(reader),
                    Excluded = ReadStrings(reader),
                    Messages = ReadMessages(reader),
                },
                EnvelopeKind.GroupCommand => new PgSignalREnvelope
                {
                    Kind = kind,
                    Sender = sender,
                    Recipient = recipient,
                    AckId = reader.ReadInt64(),
                    AddToGroup = reader.ReadBoolean(),
                    ConnectionId = reader.ReadString(),
                    GroupName = reader.ReadString(),
                },
                EnvelopeKind.Ack => new PgSignalREnvelope { Kind = kind, Sender = sender, Recipient = recipient, AckId = reader.ReadInt64() },
                EnvelopeKind.ClientInvocation => new PgSignalREnvelope
                {
                    Kind = kind,
                    Sender = sender,
                    Recipient = recipient,
                    AckId = reader.ReadInt64(),
                    InvocationId = reader.ReadString(),
                    ConnectionId = reader.ReadString(),
                    Messages = ReadMessages(reader),
                },
                EnvelopeKind.ClientResult => ReadClientResult(reader, sender, recipient),
                _ => throw new InvalidDataException($"A backplane message of unknown kind {(byte)kind}."),
            };
        }
        catch (EndOfStreamException ex)
        {
            throw new InvalidDataException("A truncated backplane message.", ex);
        }
    }

    private static PgSignalREnvelope ReadClientResult(BinaryReader reader, Guid sender, Guid recipient)
    {
        var invocationId = reader.ReadString();
        var status = (ResultStatus)reader.ReadByte();
        var error = reader.ReadString();
        var protocol = reader.ReadString();
        var length = reader.Read7BitEncodedInt();
        return new PgSignalREnvelope
        {
            Kind = EnvelopeKind.ClientResult,
            Sender = sender,
            Recipient = recipient,
            InvocationId = invocationId,
            Status = status,
            Error = error,
            ProtocolName = protocol,
            Result = ReadExactly(reader, length),
        };
    }

    private static void WriteStrings(BinaryWriter writer, IReadOnlyList<string> values)
    {
        writer.Write7BitEncodedInt(values.Count);
        foreach (var value in values)
        {
            writer.Write(value);
        }
    }

    private static string[] ReadStrings(BinaryReader reader)
    {
        var values = new string[reader.Read7BitEncodedInt()];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = reader.ReadString();
        }

        return values;
    }

    private static void WriteMessages(BinaryWriter writer, IReadOnlyList<SerializedMessage> messages)
    {
        writer.Write7BitEncodedInt(messages.Count);
        foreach (var message in messages)
        {
            writer.Write(message.ProtocolName);
            writer.Write7BitEncodedInt(message.Serialized.Length);
            writer.Write(message.Serialized.Span);
        }
    }

    private static SerializedMessage[] ReadMessages(BinaryReader reader)
    {
        var messages = new SerializedMessage[reader.Read7BitEncodedInt()];
        for (var i = 0; i < messages.Length; i++)
        {
            var protocol = reader.ReadString();
            messages[i] = new SerializedMessage(protocol, ReadExactly(reader, reader.Read7BitEncodedInt()));
        }

        return messages;
    }

    private static byte[] ReadExactly(BinaryReader reader, int length)
    {
        var bytes = reader.ReadBytes(length);
        if (bytes.Length != length)
        {
            throw new EndOfStreamException();
        }

        return bytes;
    }
}
