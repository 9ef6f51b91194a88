import type { Command } from 'commander';
import { newPlan } from '../../api/new-plan.js';
import { PlanError } from '../../errors.js';
import { CHANGE_KINDS, isChangeKind } from '../../changes/kinds/registry.js';
import { runOptions, withCommonOptions, type CommonOptions } from '../options.js';
import type { Run } from './types.js';

/** `migrate plan new <kind> <table.column> [targets...]` */
export function newCommand(plan: Command, run: Run): void {
  withCommonOptions(
    plan
      .command('new')
      .argument('<kind>', CHANGE_KINDS.join(' | '))
      .argument('<source>', '[schema.]table.column (merge: table.col1,col2; rename-table: [schema.]table)')
      .argument(
        '[targets...]',
        'rename: new name; split: new columns; merge: new column; retype: new type; drop: none; index: its name (source: table.col1,col2); rename-table: new name',
      ),
  )
    .description('write a plan file from the live catalog, with its expressions proposed and every default spelled out')
    .option('--name <plan>', 'the plan name (default: kind-table-column)')
    .action(async (kind: string, source: string, targets: string[], o: CommonOptions & { name?: string }) =>
      run(o, async (output) => {
        if (!isChangeKind(kind)) throw new PlanError(`unknown change kind "${kind}": use ${CHANGE_KINDS.join(', ')}`);
        const r = await newPlan({ kind, source, targets, dir: o.dir, name: o.name }, runOptions(o));
        output.result(
          { event: 'new', plan: r.plan, file: r.file, placeholders: r.placeholders },
          `wrote ${r.file}` +
            (r.placeholders.length
              ? `\nwrite these before lint accepts it: ${r.placeholders.join(', ')}`
              : `\nnext: migrate plan lint ${r.plan} && migrate plan show ${r.plan}`),
        );
        return {};
      }),
    );
}
