import { describe, expect, it } from 'vitest';
import { PlanError } from '../../src/errors.js';
import { parsePlan } from '../../src/plan/load.js';
import { orderProblems, releaseOrder } from '../../src/plan/queue.js';

/** A rename plan on `table`, in file `<name>.yaml`, with `after:` as given. */
function plan(name: string, after?: string | string[], table = 'public.users') {
  const afterLine = after === undefined ? '' : `after: ${JSON.stringify(after)}\n`;
  return parsePlan(`plan: ${name}\ntable: ${table}\n${afterLine}rename: { column: c_${name.replaceAll('-', '_')}, to: d }\n`, `/plans/${name}.yaml`);
}

describe('the release order', () => {
  it('is the file order when no plan says after', () => {
    expect(releaseOrder([plan('c'), plan('a'), plan('b')]).map((p) => p.name)).toEqual(['a', 'b', 'c']);
  });

  it('puts a plan after every plan its after names, and keeps the file order otherwise', () => {
    const order = releaseOrder([plan('a', 'c'), plan('b'), plan('c'), plan('d', ['a', 'b'])]).map((p) => p.name);
    expect(order).toEqual(['b', 'c', 'a', 'd']);
  });

  it('refuses an after naming no plan of the folder, or the plan itself', () => {
    expect(orderProblems([plan('a', 'nope'), plan('b', 'b')])).toEqual([
      { file: '/plans/a.yaml', path: 'after', message: 'names "nope", which is not a plan in this folder' },
      { file: '/plans/b.yaml', path: 'after', message: 'a plan cannot ship after itself ("b")' },
    ]);
    // A library caller passing some plans: the named plan's state in the database decides.
    expect(releaseOrder([plan('a', 'nope')], { known: false }).map((p) => p.name)).toEqual(['a']);
  });

  it('refuses plans that wait for each other in a circle, once, naming the circle', () => {
    const problems = orderProblems([plan('a', 'c'), plan('b', 'a'), plan('c', 'b'), plan('d')]);
    expect(problems).toEqual([
      {
        file: '/plans/a.yaml',
        path: 'after',
        message: 'the plans wait for each other in a circle (a → c → b → a), so none can start; remove one "after:"',
      },
    ]);
    expect(() => releaseOrder([plan('a', 'b'), plan('b', 'a')])).toThrow(PlanError);
  });
});
