/**
 * pgshift's public API. Every CLI command is one of these functions; they
 * return result objects and throw typed errors, and never print or exit.
 */
export { apply, type ApplyOptions, type PlanOutcome } from './api/apply.js';
export { pause, resume, tune, type Tuning } from './api/steer.js';
export type { Waiting } from './api/queue.js';
export type { BackfillControl } from './state/store.js';
export { rollback } from './api/rollback.js';
export { purge, type PurgeOutcome } from './api/purge.js';
export { status, type PlanStatus } from './api/status.js';
export { history } from './api/log.js';
export { detect, type DetectResult, type Detection } from './api/detect.js';
export { newPlan, type NewPlanRequest, type NewPlanResult } from './api/new-plan.js';
export type { HistoryEvent } from './state/store.js';
export { verify, type VerifyReport } from './api/verify.js';
export { OldCodeError, type OldCodeActivity, type OldCodeWriter, type OldCodeStatement } from './api/old-code.js';
export { DriftError, type DriftProblem } from './api/drift.js';
export { show, type ShownPhase } from './api/show.js';
export { lint, type LintResult } from './api/lint.js';
export type { RunOptions } from './api/session.js';
export { loadPlans, loadPlanFile, parsePlan } from './plan/load.js';
export type { Plan, Change, Guards, BackfillSettings } from './plan/types.js';
export { PHASES, type Phase, type Status } from './phases/phases.js';
export { currentPhase, readsSwitched } from './api/phase-flag.js';
export * from './errors.js';
export type { VerifyResult } from './backfill/verify.js';
export type { BackfillProgress } from './backfill/backfill.js';
export { rehearse } from './rehearse/rehearse.js';
export type { Rehearsal, RehearsalStep, RehearseOptions, CommandCell, VerifyCell, MigrateCell, CellOutcome } from './rehearse/types.js';
export { RehearsalInterruptedError } from './rehearse/types.js';
