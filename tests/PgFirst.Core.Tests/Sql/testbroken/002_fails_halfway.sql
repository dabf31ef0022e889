-- The first statement succeeds, the second fails: the installer must leave neither behind.
CREATE TABLE IF NOT EXISTS {schema}.gadget (id integer PRIMARY KEY);
INSERT INTO {schema}.widget (id) VALUES (1), (1);
