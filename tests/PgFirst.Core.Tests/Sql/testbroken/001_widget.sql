CREATE TABLE IF NOT EXISTS {schema}.widget (id integer PRIMARY KEY);
