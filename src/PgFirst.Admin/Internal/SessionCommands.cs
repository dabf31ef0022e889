using System.CommandLine;
using PgFirst.Core;
using PgSessions;
using Spectre.Console;

namespace PgFirst.Admin.Internal;

internal static class SessionCommands
{
    public static Command Build(AdminIO io)
    {
        var sessions = new Command("sessions", "The session store (PgSessions).");

        var stats = new Command("stats", "Live and expired sessions, sessions bound to users, distinct users and data bytes, per tenant (every tenant unless --tenant).") { GlobalOptions.Tenant };
        stats.SetAction(io, async (context, parse, cancellationToken) =>
        {
            var tenant = parse.GetValue(GlobalOptions.Tenant);
            var rows = await Manager(context, tenant).GetStatsAsync(allTenants: tenant is null, cancellationToken).ConfigureAwait(false);
            if (context.Json)
            {
                context.WriteJson(new
                {
                    live = rows.Sum(r => r.Live),
                    expired = rows.Sum(r => r.Expired),
                    boundToUsers = rows.Sum(r => r.BoundToUsers),
                    dataBytes = rows.Sum(r => r.DataBytes),
                    tenants = rows,
                });
                return AdminExitCode.Ok;
            }

            context.Markup($"[bold]{Format.Count(rows.Sum(r => r.Live))}[/] live sessions ({Format.Count(rows.Sum(r => r.BoundToUsers))} signed in), {Format.Count(rows.Sum(r => r.Expired))} expired awaiting cleanup, {Format.Bytes(rows.Sum(r => r.DataBytes))} of data");
            var table = AdminContext.Table("Tenant", "#Live", "#Signed in", "#Users", "#Expired", "#Data");
            foreach (var row in rows)
            {
                table.AddRow(Markup.Escape(row.TenantId), Format.Count(row.Live), Format.Count(row.BoundToUsers), Format.Count(row.Users), Format.Count(row.Expired), Format.Bytes(row.DataBytes));
            }

            context.Write(table);
            return AdminExitCode.Ok;
        });
        sessions.Subcommands.Add(stats);

        var user = new Option<string?>("--user", "-u") { Description = "The user id the app bound the sessions to (BindUserAsync)." };
        var list = new Command("list", "A user's live sessions, newest first, with the device they were created on.") { user, GlobalOptions.Tenant };
        list.SetAction(io, async (context, parse, cancellationToken) =>
        {
            var userId = parse.GetValue(user) ?? throw AdminException.Usage("sessions list needs --user U.");
            var found = await Manager(context, parse.GetValue(GlobalOptions.Tenant)).ListSessionsAsync(userId, cancellationToken).ConfigureAwait(false);
            if (context.Json)
            {
                context.WriteJson(found);
                return AdminExitCode.Ok;
            }

            if (found.Count == 0)
            {
                context.Line($"User '{userId}' has no live session.");
                return AdminExitCode.Ok;
            }

            var table = AdminContext.Table("Session id", "Created", "Last seen", "Expires", "Client IP", "User agent");
            foreach (var session in found)
            {
                table.AddRow(session.SessionId.ToString(), Format.Time(session.CreatedAt), Format.Time(session.LastSeenAt), Format.Time(session.ExpiresAt), Markup.Escape(session.ClientIp ?? "-"), Markup.Escape(session.UserAgent ?? "-"));
            }

            context.Write(table);
            return AdminExitCode.Ok;
        });
        sessions.Subcommands.Add(list);

        var id = new Option<string?>("--id") { Description = "One session, by its public id (ISession.Id, as 'sessions list' shows)." };
        var revoke = new Command("revoke", "Sign out one session (--id) or every session of a user (--user), on every instance at its next request. Needs --yes.") { user, id, GlobalOptions.Tenant, GlobalOptions.Yes };
        revoke.SetAction(io, async (context, parse, cancellationToken) =>
        {
            var userId = parse.GetValue(user);
            var sessionId = parse.GetValue(id);
            if ((userId is null) == (sessionId is null))
            {
                throw AdminException.Usage("sessions revoke needs exactly one of --user U and --id ID.");
            }

            if (sessionId is not null && !Guid.TryParse(sessionId, out _))
            {
                throw AdminException.Usage($"--id '{sessionId}' is not a session id (a GUID, as 'sessions list' shows).");
            }

            var tenant = parse.GetValue(GlobalOptions.Tenant) ?? PgFirstOptions.DefaultTenant;
            var manager = Manager(context, tenant);
            if (!parse.GetValue(GlobalOptions.Yes))
            {
                if (userId is not null)
                {
                    var live = await manager.ListSessionsAsync(userId, cancellationToken).ConfigureAwait(false);
                    return CacheCommands.Unconfirmed(context, $"Would revoke the {live.Count} live session(s) of user '{userId}' in tenant '{tenant}' (and delete any of theirs that expired; other tenants' sessions are left alone).", new { revoked = 0, wouldRevoke = live.Count, tenant });
                }

                return CacheCommands.Unconfirmed(context, $"Would revoke session {sessionId} in tenant '{tenant}'.", new { revoked = 0, wouldRevoke = 1, tenant });
            }

            int revoked;
            if (userId is not null)
            {
                revoked = await manager.RevokeAllAsync(userId, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            else if (await manager.RevokeAsync(sessionId!, cancellationToken).ConfigureAwait(false))
            {
                revoked = 1;
            }
            else
            {
                throw AdminException.NotFound($"no session {sessionId} in tenant '{tenant}'.");
            }

            context.Report(new { revoked, tenant }, $"Revoked {revoked} session(s) in tenant '{tenant}'.");

            return AdminExitCode.Ok;
        });
        sessions.Subcommands.Add(revoke);
        return sessions;
    }

    private static PgSessionManager Manager(AdminContext context, string? tenant) =>
        new(new PostgresSessionBackend(context.DataSource, context.StoreOptions), new PgTenantContext(tenant ?? PgFirstOptions.DefaultTenant));
}
