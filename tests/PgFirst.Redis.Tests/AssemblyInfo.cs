[assembly: AssemblyFixture(typeof(PgFirst.Testing.RedisServer))]
