import { PlanError } from '../errors.js';
import type { RetypeSpec } from '../plan/schema.js';
import type { ChangeKindDefinition } from './model.js';

/** `retype: { column, to, using, reverse }`: one column to another type. Not yet compiled. */
export const retype: ChangeKindDefinition<RetypeSpec> = {
  outline: (change) => ({
    reads: [change.column],
    adds: [],
    expressions: [],
  }),
  resolve: (change) => {
    throw new PlanError(`retype of column "${change.column}" is not supported by this version of pgshift yet`);
  },
};
