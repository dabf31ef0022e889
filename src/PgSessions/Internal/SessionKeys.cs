using System.Security.Cryptography;
using System.Text;

namespace PgSessions.Internal;

internal static class SessionKeys
{
    // SessionMiddleware accepts only 36-character keys, and makes them from 16 random bytes the same way.
    public const int KeyLength = 36;

    public static string NewKey() => new Guid(RandomNumberGenerator.GetBytes(16)).ToString();

    public static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
