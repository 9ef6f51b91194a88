import type { HumanLog } from '../log.js';

/** Something drawn at the bottom of the terminal (the backfill's progress bar) that log lines must go above. */
export interface BottomLine {
  log(text: string): void;
}

let bottom: BottomLine | null = null;

/** While `line` is drawn, log lines are written above it instead of through it. */
export function holdBottomLine(line: BottomLine | null): void {
  bottom = line;
}

/** Human log lines for stderr, a terminal: above the progress bar while one is drawn. */
export const terminalLog: HumanLog = {
  write: (text) => (bottom ? bottom.log(text) : process.stderr.write(text)),
  colorize: Boolean(process.stderr.isTTY) && !process.env.NO_COLOR,
};
