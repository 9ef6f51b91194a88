import { readFileSync } from 'node:fs';

/** pgshift's version, read once from package.json; recorded in every event. */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
