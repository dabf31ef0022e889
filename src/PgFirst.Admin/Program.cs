using PgFirst.Admin;

return await AdminApp.RunAsync(args, AdminIO.System).ConfigureAwait(false);
