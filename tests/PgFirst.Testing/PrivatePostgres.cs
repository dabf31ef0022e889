using System.Diagnostics;
using System.Globalization;
using System.Text;
using Npgsql;

namespace PgFirst.Testing;

/// <summary>
/// A throwaway PostgreSQL cluster of one test's own, to crash and restart for real without disturbing the shared
/// <see cref="PostgresServer"/> the other test classes use in parallel: <c>initdb</c> into a temporary directory, trust
/// authentication, listening on 127.0.0.1 only on a free port, its Unix socket inside that directory. Stopped and
/// deleted on dispose. <see cref="CreateStandbyAsync(CancellationToken)"/> gives it a streaming standby (another such cluster) to fail over to.
/// </summary>
/// <remarks>
/// Needs the PostgreSQL 15+ server binaries on this machine (<c>/usr/lib/postgresql/*/bin</c>, or
/// <c>pg_config --bindir</c>); <c>./pgfirst test</c> installs the Debian packages. initdb and postgres refuse to run as
/// root, so as root they run as the <c>postgres</c> user (through <c>runuser</c>, else <c>su</c>), which owns the
/// directory. Where none of that is possible, <see cref="CreateAsync"/> fails and says why.
/// </remarks>
public sealed class PrivatePostgres : IAsyncDisposable
{
    /// <summary>The superuser initdb creates, trusted on loopback without a password.</summary>
    public const string UserName = "pgfirst";

    // The account the Debian packages create, which runs the server when the tests run as root.
    private const string ServerAccount = "postgres";
    private const int StartAttempts = 3;
    private static readonly TimeSpan CommandLimit = TimeSpan.FromSeconds(60);
    private static readonly string[] ServerTools = ["initdb", "pg_ctl", "postgres"];

    private readonly string _bin;
    private readonly string _directory;
    private readonly ServerUser _user;
    private int _port;

    private PrivatePostgres(string bin, string directory, ServerUser user, string? standbyName = null)
    {
        _bin = bin;
        _directory = directory;
        _user = user;
        StandbyName = standbyName;
    }

    /// <summary>Gets the loopback port the server listens on.</summary>
    public int Port => _port;

    /// <summary>
    /// Gets the name a standby made by <see cref="CreateStandbyAsync(CancellationToken)"/> streams under: its <c>application_name</c> in the
    /// primary's <c>pg_stat_replication</c>, its replication slot there, and what <c>synchronous_standby_names</c>
    /// names. <see langword="null"/> for a cluster made by <see cref="CreateAsync"/>.
    /// </summary>
    public string? StandbyName { get; }

    /// <summary>Gets a connection string to the cluster's <c>postgres</c> database as <see cref="UserName"/>.</summary>
    public string ConnectionString => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = _port,
        Username = UserName,
        Database = "postgres",
    }.ConnectionString;

    private string DataDirectory => Path.Combine(_directory, "data");

    private string LogFile => Path.Combine(_directory, "server.log");

    /// <summary>Creates the cluster and starts its server; waits until it accepts connections.</summary>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The running cluster; the caller disposes it.</returns>
    /// <exception cref="InvalidOperationException">No usable binaries, no way to run them, or the server failed to start.</exception>
    public static async Task<PrivatePostgres> CreateAsync(CancellationToken cancellationToken = default)
    {
        var bin = FindBinaries();
        var user = await ServerUser.FindAsync(cancellationToken);
        var postgres = new PrivatePostgres(bin, Directory.CreateTempSubdirectory("pgfirst-pg-").FullName, user);
        try
        {
            await postgres.InitializeAsync(cancellationToken);
            return postgres;
        }
        catch
        {
            await postgres.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Crashes the server: <c>pg_ctl stop -m immediate</c> kills every backend with no shutdown checkpoint, so the next
    /// start recovers from the WAL. The operating system survives, unlike in a power cut, so what is lost is only
    /// what the server had not yet written: WAL still in its buffers, such as commits made with
    /// <c>synchronous_commit = off</c> in the last few hundred milliseconds.
    /// </summary>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when the server is gone.</returns>
    public Task CrashAsync(CancellationToken cancellationToken = default) =>
        PgCtlAsync(["stop", "-D", DataDirectory, "-m", "immediate", "-w", "-t", Seconds(CommandLimit)], cancellationToken);

    /// <summary>Starts the stopped server again on the same port; waits until it accepts connections.</summary>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when the server accepts connections.</returns>
    public Task StartAsync(CancellationToken cancellationToken = default) => StartOnPortAsync(cancellationToken);

    /// <summary>
    /// Makes a streaming standby of this running cluster: <c>pg_basebackup -R -X stream</c> into a directory of its own
    /// (with a replication slot on this cluster, so no WAL it needs is recycled), a hot standby on another free loopback
    /// port; waits until this cluster's <c>pg_stat_replication</c> shows it streaming. Asynchronous until
    /// <see cref="MakeSynchronousAsync"/>.
    /// </summary>
    /// <remarks>
    /// initdb's trust set-up already admits replication connections from 127.0.0.1, and <c>wal_level = replica</c> and
    /// <c>max_wal_senders = 10</c> are PostgreSQL's defaults, so the primary needs no change and no restart.
    /// </remarks>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The running standby; the caller disposes it (before or after this cluster, either works).</returns>
    /// <exception cref="InvalidOperationException">The base backup failed, or the standby did not start or stream.</exception>
    public Task<PrivatePostgres> CreateStandbyAsync(CancellationToken cancellationToken = default) =>
        CreateStandbyAsync(Port, cancellationToken);

    /// <summary>
    /// Makes a streaming standby of this running cluster, as <see cref="CreateStandbyAsync(CancellationToken)"/> does, that
    /// reaches it through another loopback port: a <see cref="TcpProxy"/> in front of this cluster, so a test can cut
    /// replication (<see cref="TcpProxy.GoDown"/>) and leave the standby behind.
    /// </summary>
    /// <param name="streamFromPort">The loopback port the base backup and the standby's WAL stream connect to.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>The running standby; the caller disposes it (before or after this cluster, either works).</returns>
    /// <exception cref="InvalidOperationException">The base backup failed, or the standby did not start or stream.</exception>
    public async Task<PrivatePostgres> CreateStandbyAsync(int streamFromPort, CancellationToken cancellationToken = default)
    {
        // A slot name and an application_name both: lowercase letters, digits and underscores.
        var name = "standby_" + Guid.NewGuid().ToString("N")[..12];
        var standby = new PrivatePostgres(_bin, Directory.CreateTempSubdirectory("pgfirst-pg-").FullName, _user, name);
        try
        {
            await standby.InitializeStandbyAsync(this, streamFromPort, cancellationToken);
            return standby;
        }
        catch
        {
            await standby.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Makes <paramref name="standby"/> this cluster's synchronous standby: <c>synchronous_standby_names</c> names it
    /// (<c>ALTER SYSTEM</c>, then a reload), and with <c>synchronous_commit = on</c> (the default) every commit here
    /// returns only once the standby has flushed its WAL. Waits until <c>pg_stat_replication</c> says <c>sync</c>.
    /// </summary>
    /// <remarks>
    /// Call it after <see cref="CreateStandbyAsync(CancellationToken)"/>, never before: <c>ALTER SYSTEM</c> writes
    /// <c>postgresql.auto.conf</c>, which a base backup copies, so a standby made afterwards would inherit the setting
    /// and, once promoted, wait forever for a synchronous standby of its own on every commit.
    /// </remarks>
    /// <param name="standby">A standby of this cluster, made by <see cref="CreateStandbyAsync(CancellationToken)"/>.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when the standby is synchronous.</returns>
    /// <exception cref="InvalidOperationException">The standby did not become synchronous within a minute.</exception>
    public async Task MakeSynchronousAsync(PrivatePostgres standby, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(standby);
        var name = standby.StandbyName ?? throw new ArgumentException("Not a standby made by CreateStandbyAsync.", nameof(standby));

        // ALTER SYSTEM takes no parameters; the name is ours and safe to quote.
        await QueryAsync<object>($"ALTER SYSTEM SET synchronous_standby_names = '\"{name}\"'", cancellationToken);
        await QueryAsync<bool>("SELECT pg_reload_conf()", cancellationToken);
        await WaitUntilAsync(
            $"standby {name} to become synchronous",
            async () => await QueryAsync<string>("SELECT sync_state FROM pg_stat_replication WHERE application_name = $1", cancellationToken, name) == "sync",
            cancellationToken);
    }

    /// <summary>
    /// Waits until <paramref name="standby"/> has replayed everything this cluster had written when the call began, so
    /// what was committed here (the schema, say) is readable there.
    /// </summary>
    /// <param name="standby">A standby of this cluster.</param>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when the standby has caught up.</returns>
    /// <exception cref="InvalidOperationException">It did not catch up within a minute.</exception>
    public async Task WaitForReplayAsync(PrivatePostgres standby, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(standby);
        var lsn = await QueryAsync<string>("SELECT pg_current_wal_lsn()::text", cancellationToken);
        await standby.WaitUntilAsync(
            $"the standby to replay the primary's WAL up to {lsn}",
            async () => await standby.QueryAsync<bool>("SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", cancellationToken, lsn!),
            cancellationToken);
    }

    /// <summary>
    /// Promotes this standby to a primary (<c>pg_ctl promote -w</c>): it stops replaying, starts a new timeline and
    /// accepts writes. Its UNLOGGED tables, which replication never carries, come up empty.
    /// </summary>
    /// <param name="cancellationToken">The cancellation token.</param>
    /// <returns>A task that completes when the server accepts writes.</returns>
    /// <exception cref="InvalidOperationException">The promotion failed or took longer than a minute.</exception>
    public Task PromoteAsync(CancellationToken cancellationToken = default) =>
        PgCtlAsync(["promote", "-D", DataDirectory, "-w", "-t", Seconds(CommandLimit)], cancellationToken);

    /// <summary>Returns the server's log (everything since initdb), or its last <paramref name="lines"/> lines.</summary>
    /// <param name="lines">How many lines from the end, or <see langword="null"/> for all.</param>
    /// <returns>The log text, or why it could not be read.</returns>
    public string ReadServerLog(int? lines = null)
    {
        try
        {
            // The server appends to it meanwhile.
            using var stream = new FileStream(LogFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            var text = reader.ReadToEnd();
            return lines is { } count ? string.Join('\n', text.Split('\n').TakeLast(count + 1)) : text;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"(the server log {LogFile} could not be read: {ex.Message})";
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        var pidFile = Path.Combine(DataDirectory, "postmaster.pid");
        if (File.Exists(pidFile))
        {
            try
            {
                await PgCtlAsync(["stop", "-D", DataDirectory, "-m", "immediate", "-w", "-t", Seconds(CommandLimit)], CancellationToken.None);
            }
            catch (InvalidOperationException)
            {
                // pg_ctl could not stop it: the postmaster's backends exit when it does.
                KillPostmaster(pidFile);
            }
        }

        for (var attempt = 1; Directory.Exists(_directory); attempt++)
        {
            try
            {
                Directory.Delete(_directory, recursive: true);
            }
            catch (IOException) when (attempt < 5)
            {
                // A process that was just stopped may still be closing a file in it.
                await Task.Delay(200);
            }
        }
    }

    private async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await _user.TakeOwnershipAsync(_directory, cancellationToken);
        var initdb = _user.Command(
            Path.Combine(_bin, "initdb"),
            "-D", DataDirectory, "-U", UserName, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions");
        try
        {
            await RunAsync(initdb, cancellationToken);
        }
        catch (InvalidOperationException ex) when (_user.IsOtherAccount)
        {
            throw new InvalidOperationException(
                $"{ex.Message}\ninitdb runs as the '{ServerAccount}' user here: {_directory} and every directory above it must be open to " +
                "that user (set TMPDIR to a directory that is, such as /tmp).",
                ex);
        }

        // Appended settings override initdb's; the port is given at each start, since a start may have to pick another.
        await File.AppendAllTextAsync(
            Path.Combine(DataDirectory, "postgresql.conf"),
            $"""

            # PrivatePostgres (tests/PgFirst.Testing): a throwaway cluster for one test.
            listen_addresses = '127.0.0.1'
            unix_socket_directories = '{_directory.Replace("'", "''", StringComparison.Ordinal)}'
            shared_buffers = 16MB
            max_connections = 60
            log_line_prefix = '%m [%p] '

            """,
            cancellationToken);

        await StartOnFreePortAsync(cancellationToken);
        await using var dataSource = NpgsqlDataSource.Create(ConnectionString);
        await using var command = dataSource.CreateCommand("SELECT current_setting('server_version_num')::int");
        var version = (int)(await command.ExecuteScalarAsync(cancellationToken))!;
        if (version < 150000)
        {
            throw new InvalidOperationException($"The binaries in {_bin} are PostgreSQL {version}; the tests need 15 or later.");
        }
    }

    private async Task InitializeStandbyAsync(PrivatePostgres primary, int streamFromPort, CancellationToken cancellationToken)
    {
        var name = StandbyName!;
        await _user.TakeOwnershipAsync(_directory, cancellationToken);

        // -R writes standby.signal and a primary_conninfo that keeps the application_name given here, which is how the
        // primary's pg_stat_replication and synchronous_standby_names know this standby. -c fast: no wait for a spread
        // checkpoint.
        var conninfo = $"host=127.0.0.1 port={streamFromPort.ToString(CultureInfo.InvariantCulture)} user={UserName} application_name={name}";
        var basebackup = _user.Command(
            Path.Combine(_bin, "pg_basebackup"),
            "-D", DataDirectory, "-d", conninfo, "-R", "-X", "stream", "-C", "-S", name, "-c", "fast", "--no-sync");
        await RunAsync(basebackup, cancellationToken);

        // The copied postgresql.conf carries the primary's socket directory; a later line wins.
        await File.AppendAllTextAsync(
            Path.Combine(DataDirectory, "postgresql.conf"),
            $"""

            # PrivatePostgres standby of the cluster on port {primary.Port.ToString(CultureInfo.InvariantCulture)}.
            unix_socket_directories = '{_directory.Replace("'", "''", StringComparison.Ordinal)}'
            hot_standby = on

            """,
            cancellationToken);
        await StartOnFreePortAsync(cancellationToken);
        await primary.WaitUntilAsync(
            $"standby {name} to stream",
            async () => await primary.QueryAsync<string>("SELECT state FROM pg_stat_replication WHERE application_name = $1", cancellationToken, name) == "streaming",
            cancellationToken);
    }

    private async Task StartOnFreePortAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            _port = TestEnvironment.UnusedLoopbackPort();
            try
            {
                await StartOnPortAsync(cancellationToken);
                return;
            }
            catch (InvalidOperationException ex) when (attempt < StartAttempts && ex.Message.Contains("Address already in use", StringComparison.Ordinal))
            {
                // Another process took the port between the check and the start: try another one.
            }
        }
    }

    // One statement on a connection of its own, outside any pool (a pool would keep connections a crash breaks).
    private async Task<T?> QueryAsync<T>(string sql, CancellationToken cancellationToken, params object[] parameters)
    {
        var settings = new NpgsqlConnectionStringBuilder(ConnectionString) { Pooling = false };
        await using var connection = new NpgsqlConnection(settings.ConnectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        }

        var value = await command.ExecuteScalarAsync(cancellationToken);
        return value is null or DBNull ? default : (T)value;
    }

    // Polls until the condition holds; fails after CommandLimit with the end of the server log.
    private async Task WaitUntilAsync(string what, Func<Task<bool>> condition, CancellationToken cancellationToken)
    {
        var elapsed = Stopwatch.StartNew();
        while (!await condition())
        {
            if (elapsed.Elapsed > CommandLimit)
            {
                throw new InvalidOperationException(
                    $"Timed out after {CommandLimit.TotalSeconds:0} s waiting for {what}.\nLast lines of the server log {LogFile}:\n{ReadServerLog(lines: 20)}");
            }

            await Task.Delay(50, cancellationToken);
        }
    }

    private Task StartOnPortAsync(CancellationToken cancellationToken)
    {
        var port = _port.ToString(CultureInfo.InvariantCulture);
        return PgCtlAsync(["start", "-D", DataDirectory, "-l", LogFile, "-w", "-t", Seconds(CommandLimit), "-o", "-p " + port], cancellationToken);
    }

    private async Task PgCtlAsync(string[] arguments, CancellationToken cancellationToken)
    {
        try
        {
            await RunAsync(_user.Command(Path.Combine(_bin, "pg_ctl"), arguments), cancellationToken);
        }
        catch (InvalidOperationException ex)
        {
            throw new InvalidOperationException($"{ex.Message}\nLast lines of the server log {LogFile}:\n{ReadServerLog(lines: 20)}", ex);
        }
    }

    private async Task<string> RunAsync(ProcessStartInfo start, CancellationToken cancellationToken)
    {
        // The server's user must be able to stand in its working directory (the tests' own may be closed to it).
        start.WorkingDirectory = _directory;
        return await RunProcessAsync(start, cancellationToken);
    }

    private static void KillPostmaster(string pidFile)
    {
        try
        {
            // postmaster.pid: the postmaster's process id on its first line.
            var pid = int.Parse(File.ReadLines(pidFile).First(), NumberStyles.None, CultureInfo.InvariantCulture);
            using var postmaster = Process.GetProcessById(pid);
            postmaster.Kill();
            postmaster.WaitForExit(CommandLimit);
        }
        catch (Exception ex) when (ex is IOException or FormatException or ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // Gone already, or its pid file was never complete.
        }
    }

    private static string Seconds(TimeSpan limit) => ((int)limit.TotalSeconds).ToString(CultureInfo.InvariantCulture);

    private static string FindBinaries()
    {
        static bool HasServer(string bin) => ServerTools.All(tool => File.Exists(Path.Combine(bin, tool)));

        // Debian and Ubuntu: /usr/lib/postgresql/<major>/bin, newest first.
        const string Debian = "/usr/lib/postgresql";
        var installed = Directory.Exists(Debian)
            ? Directory.GetDirectories(Debian)
                .Select(d => (Major: int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var major) ? major : 0, Bin: Path.Combine(d, "bin")))
                .Where(d => d.Major >= 15 && HasServer(d.Bin))
                .OrderByDescending(d => d.Major)
                .Select(d => d.Bin)
                .FirstOrDefault()
            : null;
        if (installed is not null)
        {
            return installed;
        }

        // Elsewhere: where pg_config says (its version is checked once the server runs).
        try
        {
            var start = new ProcessStartInfo("pg_config") { ArgumentList = { "--bindir" }, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEnd().Trim();
            if (process.WaitForExit(CommandLimit) && process.ExitCode == 0 && HasServer(output))
            {
                return output;
            }
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No pg_config on the PATH.
        }

        throw new InvalidOperationException(
            "PrivatePostgres needs the PostgreSQL 15+ server binaries (initdb, pg_ctl, postgres) under /usr/lib/postgresql/<major>/bin " +
            "or where `pg_config --bindir` says, and found none. ./pgfirst test installs the Debian postgresql package; " +
            "elsewhere install the PostgreSQL server package.");
    }

    // Runs an external command with a bounded wait; fails with its output.
    private static async Task<string> RunProcessAsync(ProcessStartInfo start, CancellationToken cancellationToken)
    {
        start.UseShellExecute = false;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        var commandLine = string.Join(' ', start.ArgumentList.Prepend(start.FileName));
        using var process = new Process { StartInfo = start };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException($"Could not run `{commandLine}`: {ex.Message}", ex);
        }

        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(CommandLimit);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"`{commandLine}` did not finish within {CommandLimit.TotalSeconds:0} s.");
        }

        var output = new StringBuilder().Append(await stdout).Append(await stderr).ToString().Trim();
        return process.ExitCode == 0
            ? output
            : throw new InvalidOperationException($"`{commandLine}` failed with exit code {process.ExitCode}:\n{output}");
    }

    // Who runs initdb, pg_ctl and so the server: this process's own user, or the postgres account when that is root.
    private sealed class ServerUser
    {
        // Where runuser and su live when the PATH leaves them out.
        private static readonly string[] SystemDirectories = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];
        private readonly string? _switcher;

        private ServerUser(string? switcher) => _switcher = switcher;

        // Whether the server runs as the postgres account rather than as this process's user.
        public bool IsOtherAccount => _switcher is not null;

        public static async Task<ServerUser> FindAsync(CancellationToken cancellationToken)
        {
            if (!Environment.IsPrivilegedProcess)
            {
                return new ServerUser(null);
            }

            const string Root = "The tests run as root, and initdb and postgres refuse to run as root, so they must run as the '" + ServerAccount + "' user";
            var switcher = FindTool("runuser") ?? FindTool("su")
                ?? throw new InvalidOperationException($"{Root}, but neither runuser nor su was found. Install util-linux, or run the tests as an ordinary user.");
            try
            {
                await RunProcessAsync(new ProcessStartInfo("id") { ArgumentList = { "-u", ServerAccount } }, cancellationToken);
            }
            catch (InvalidOperationException ex)
            {
                throw new InvalidOperationException(
                    $"{Root}, which does not exist here. Install the postgresql package (it creates that user; ./pgfirst test does), " +
                    "or run the tests as an ordinary user.",
                    ex);
            }

            return new ServerUser(switcher);
        }

        // The command line that runs `tool arguments…` as the server's user.
        public ProcessStartInfo Command(string tool, params string[] arguments)
        {
            var start = new ProcessStartInfo(_switcher ?? tool);
            if (_switcher is null)
            {
                AddAll(start, arguments);
            }
            else if (Path.GetFileName(_switcher) == "runuser")
            {
                start.ArgumentList.Add("-u");
                start.ArgumentList.Add(ServerAccount);
                start.ArgumentList.Add("--");
                start.ArgumentList.Add(tool);
                AddAll(start, arguments);
            }
            else
            {
                // su takes one shell command: every word single-quoted.
                start.ArgumentList.Add("-s");
                start.ArgumentList.Add("/bin/sh");
                start.ArgumentList.Add("-c");
                start.ArgumentList.Add(string.Join(' ', arguments.Prepend(tool).Select(a => "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'")));
                start.ArgumentList.Add(ServerAccount);
            }

            return start;
        }

        // The directory (0700, made by this process) becomes the server user's, so initdb can create the data directory in it.
        public async Task TakeOwnershipAsync(string directory, CancellationToken cancellationToken)
        {
            if (IsOtherAccount)
            {
                await RunProcessAsync(new ProcessStartInfo("chown") { ArgumentList = { ServerAccount, directory } }, cancellationToken);
            }
        }

        private static void AddAll(ProcessStartInfo start, string[] arguments)
        {
            foreach (var argument in arguments)
            {
                start.ArgumentList.Add(argument);
            }
        }

        private static string? FindTool(string name) =>
            (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
                .Split(':', StringSplitOptions.RemoveEmptyEntries)
                .Concat(SystemDirectories)
                .Select(dir => Path.Combine(dir, name))
                .FirstOrDefault(File.Exists);
    }
}
