// A tiny test harness for the example app's suites: one client, one transaction rolled back at the end
// (so a suite leaves no rows behind), checks that throw, exit 1 on the first failure.
import pg from 'pg';

/** Run `checks(db, check)` against DATABASE_URL inside a transaction that is rolled back. */
export async function suite(name, checks) {
  const db = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await db.connect();
  let passed = 0;
  const check = (what, ok, got) => {
    if (!ok) throw new Error(`${what}: got ${JSON.stringify(got)}`);
    passed++;
  };
  try {
    await db.query('BEGIN');
    await checks(db, check);
    console.log(`${name}: ${passed} checks passed at phase ${process.env.PGSHIFT_PHASE}`);
  } catch (error) {
    console.error(`${name}: FAILED at phase ${process.env.PGSHIFT_PHASE} (${process.env.PGSHIFT_DIRECTION}) after ${passed} checks: ${error.message}`);
    process.exitCode = 1;
  } finally {
    await db.query('ROLLBACK').catch(() => undefined);
    await db.end();
  }
}
