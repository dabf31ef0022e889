namespace PgFirst.Admin.Internal;

// An error the tool reports as one line with its exit code.
internal sealed class AdminException(AdminExitCode code, string message) : Exception(message)
{
    public AdminExitCode Code { get; } = code;

    public static AdminException Usage(string message) => new(AdminExitCode.Usage, message);

    public static AdminException NotFound(string message) => new(AdminExitCode.NotFound, message);
}
