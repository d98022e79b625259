import { StrataError, type StrataErrorOptions } from '../errors/index.js';

/** Where an instruction sits in its Dockerfile: 1-based lines, `endLine` past continuations and heredoc bodies. */
export interface SourceLocation {
  readonly file: string;
  readonly startLine: number;
  readonly endLine: number;
}

const DEFAULT_HINT = 'fix the Dockerfile at the line shown (see the Dockerfile reference for the instruction)';

/**
 * A Dockerfile that cannot be read or evaluated, located as BuildKit locates it. The message reads
 * `Dockerfile:7: COPY requires at least two arguments, ...`; `problem` is the part after the location.
 */
export class DockerfileSyntaxError extends StrataError {
  readonly file: string;
  readonly line: number;
  readonly endLine: number;
  /** The instruction keyword (upper case) the error is about, when there is one. */
  readonly instruction: string | undefined;
  readonly problem: string;

  constructor(
    problem: string,
    location: SourceLocation,
    opts: StrataErrorOptions & { instruction?: string | undefined } = {},
  ) {
    super('INVALID_ARGUMENT', `${location.file}:${location.startLine}: ${problem}`, {
      hint: opts.hint ?? DEFAULT_HINT,
      cause: opts.cause,
      details: { ...opts.details, file: location.file, line: location.startLine, instruction: opts.instruction },
    });
    this.name = 'DockerfileSyntaxError';
    this.file = location.file;
    this.line = location.startLine;
    this.endLine = location.endLine;
    this.instruction = opts.instruction;
    this.problem = problem;
  }
}

/** An unlocated problem raised deep inside (lexer, flag parser); the instruction layer adds the location. */
export function problem(message: string, hint?: string): StrataError {
  return new StrataError('INVALID_ARGUMENT', message, hint === undefined ? {} : { hint });
}

/** Run `fn`, turning any unlocated StrataError into a DockerfileSyntaxError at `location`. */
export function located<T>(location: SourceLocation, instruction: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof DockerfileSyntaxError) throw err;
    if (err instanceof StrataError) {
      throw new DockerfileSyntaxError(err.message, location, {
        instruction,
        ...(err.hint === undefined ? {} : { hint: err.hint }),
        cause: err,
      });
    }
    throw err;
  }
}
