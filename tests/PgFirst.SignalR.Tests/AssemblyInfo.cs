[assembly: AssemblyFixture(typeof(PgFirst.Testing.PostgresServer))]
[assembly: AssemblyFixture(typeof(PgFirst.Testing.RedisServer))]
