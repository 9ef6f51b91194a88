// The example app's schema (examples/app/schema.ts USERS_DDL), as `--setup` builds it in the scratch database.
import pg from 'pg';

const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
await client.connect();
await client.query(`
  CREATE TABLE users (
    id bigserial PRIMARY KEY,
    full_name text NOT NULL DEFAULT 'anonymous',
    user_name text,
    email text
  )`);
await client.end();
console.log('setup: created users');
