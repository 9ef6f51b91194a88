// A second table for rehearsing two plans together (test/db/rehearse.test.ts).
import pg from 'pg';

const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
await client.connect();
await client.query(`CREATE TABLE accounts (id serial PRIMARY KEY, nick text)`);
await client.end();
