[assembly: AssemblyFixture(typeof(PgFirst.Testing.PostgresServer))]
