import { RENAME_APP } from './rename.js';
import { SPLIT_APP } from './split.js';
import type { AppFamily } from './types.js';

/** The example app's releases for each plan in `plans/`, by short name. */
export const APPS = { split: SPLIT_APP, rename: RENAME_APP } as const satisfies Record<string, AppFamily>;
export type AppName = keyof typeof APPS;
