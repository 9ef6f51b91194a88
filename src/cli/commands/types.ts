/** What a command hands back to main: errors decide the exit code; the rest was printed. */
export interface CommandResult {
  readonly errors?: readonly Error[];
  /** An exit code decided by the command itself (verify's 4). */
  readonly exitCode?: number;
}

/** How a command hands its work to main: main builds the output and turns errors into an exit code. */
export type Run = (options: import('../options.js').CommonOptions, fn: (output: import('../output.js').Output) => Promise<CommandResult>) => Promise<void>;
