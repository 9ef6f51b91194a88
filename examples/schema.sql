-- The tables the example plans in plans/ change, with a few rows each.
-- psql "$DATABASE_URL" -f examples/schema.sql
CREATE TABLE users (
  id bigserial PRIMARY KEY,
  full_name text NOT NULL DEFAULT 'anonymous',
  user_name text,
  email text
);
INSERT INTO users (full_name, user_name, email)
SELECT 'First' || g || ' Last' || g, 'user' || g, 'u' || g || '@example.com' FROM generate_series(1, 10000) g;

CREATE TABLE customers (
  id bigserial PRIMARY KEY,
  street text NOT NULL,
  city text NOT NULL,
  fax text
);
INSERT INTO customers (street, city, fax)
SELECT g || ' Main Street', (ARRAY['Lisbon', 'Oslo', 'Quito'])[1 + g % 3], '+351 21 000 ' || lpad(g::text, 4, '0') FROM generate_series(1, 10000) g;

CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  price text NOT NULL
);
INSERT INTO orders (price)
SELECT (g % 1000) || '.' || lpad((g % 100)::text, 2, '0') FROM generate_series(1, 10000) g;

-- plans/constrain-subscribers-email.yaml: every tenth email is missing, every
-- twentieth is not an address.
CREATE TABLE subscribers (
  id bigserial PRIMARY KEY,
  email text
);
INSERT INTO subscribers (email)
SELECT CASE WHEN g % 10 = 0 THEN NULL WHEN g % 20 = 5 THEN 'subscriber' || g ELSE 's' || g || '@example.com' END FROM generate_series(1, 10000) g;
CREATE TABLE accounts (
  id bigserial PRIMARY KEY,
  email text NOT NULL,
  deleted_at timestamptz
);
CREATE INDEX accounts_email_idx ON accounts (email);
INSERT INTO accounts (email, deleted_at)
SELECT 'A' || g || '@example.com', CASE WHEN g % 10 = 0 THEN now() END FROM generate_series(1, 10000) g;
CREATE TABLE suppliers (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  country text
);
INSERT INTO suppliers (name, country)
SELECT 'Supplier ' || g, (ARRAY['PT', 'NO', 'EC'])[1 + g % 3] FROM generate_series(1, 1000) g;
