ALTER TABLE {schema}.item ADD COLUMN IF NOT EXISTS note text;
