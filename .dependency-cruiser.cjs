// Layers that run one way: a folder may import only from the layers below it,
// and no file may be part of an import circle. `npm run lint:deps` checks it
// (part of `npm test`); README.md#layout draws the same picture.
const LAYERS = [
  ['base', '^src/(errors|defaults|log|version|telemetry)\\.ts$'],
  ['db, phases, fleet', '^src/(db|phases|fleet)/'],
  ['changes', '^src/changes/'],
  ['plan, detect', '^src/(plan|detect)/'],
  ['guard', '^src/guard/'],
  ['state', '^src/state/'],
  ['backfill', '^src/backfill/'],
  ['runner', '^src/runner/'],
  ['api', '^src/api/'],
  ['rehearse', '^src/rehearse/'],
  ['cli', '^src/cli/'],
  ['index', '^src/index\\.ts$'],
];

const layerRules = LAYERS.slice(0, -1).map(([name, path], i) => ({
  name: `layer: ${name}`,
  comment: `${name} may import only from the layers below it`,
  severity: 'error',
  from: { path },
  to: {
    path: LAYERS.slice(i + 1)
      .map(([, p]) => `(${p})`)
      .join('|'),
  },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [{ name: 'no-circular', comment: 'an import circle between files', severity: 'error', from: {}, to: { circular: true } }, ...layerRules],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: a circle of types is still a circle a reader has to untangle.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
