/**
 * Errors: every failure strata reports is a StrataError with a stable `code`, a message saying what went wrong and
 * where, and a `hint` saying what to do next. The CLI maps codes to exit statuses; the library never exits.
 *
 *   throw new StrataError('NOT_FOUND', 'image "busybox:latest" not found', { hint: 'run `strata images`' });
 */

export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'UNAVAILABLE'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'DATA_LOSS'
  | 'UNIMPLEMENTED'
  | 'CANCELLED'
  | 'INTERNAL';

export interface StrataErrorOptions {
  hint?: string;
  cause?: unknown;
  /** Extra structured context (a path, a field, a digest) for logs and JSON output. */
  details?: Record<string, unknown>;
}

export class StrataError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, opts: StrataErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'StrataError';
    this.code = code;
    this.hint = opts.hint;
    this.details = opts.details;
  }
}

/** A document (manifest, config, index, archive metadata) failed validation; `field` is a dotted path into it. */
export class InvalidDocumentError extends StrataError {
  constructor(what: string, field: string, problem: string, opts: StrataErrorOptions = {}) {
    super('INVALID_ARGUMENT', `invalid ${what}: ${field ? `field "${field}" ` : ''}${problem}`, {
      ...opts,
      details: { ...opts.details, field },
    });
    this.name = 'InvalidDocumentError';
  }
}

/** Bytes did not hash to the digest (or size) they were announced with. Nothing was stored. */
export class DigestMismatchError extends StrataError {
  constructor(what: string, expected: string, actual: string, opts: StrataErrorOptions = {}) {
    super('DATA_LOSS', `${what}: digest mismatch: expected ${expected}, got ${actual}`, {
      hint: 'the source is corrupt or was changed in transit; nothing was stored',
      ...opts,
      details: { ...opts.details, expected, actual },
    });
    this.name = 'DigestMismatchError';
  }
}

export class SizeMismatchError extends StrataError {
  constructor(what: string, expected: number, actual: number, opts: StrataErrorOptions = {}) {
    super('DATA_LOSS', `${what}: size mismatch: expected ${expected} bytes, got ${actual}`, {
      hint: 'the source is truncated or corrupt; nothing was stored',
      ...opts,
      details: { ...opts.details, expected, actual },
    });
    this.name = 'SizeMismatchError';
  }
}

/** An archive entry tried to write outside the extraction root (.., absolute path, symlink or hardlink escape). */
export class PathEscapeError extends StrataError {
  constructor(entry: string, reason: string, opts: StrataErrorOptions = {}) {
    super('PERMISSION_DENIED', `refusing archive entry "${entry}": ${reason}`, {
      hint: 'the archive is malicious or malformed; nothing outside the target was written',
      ...opts,
      details: { ...opts.details, entry },
    });
    this.name = 'PathEscapeError';
  }
}

export function isStrataError(err: unknown): err is StrataError {
  return err instanceof StrataError;
}

export function notFound(message: string, hint?: string): StrataError {
  return new StrataError('NOT_FOUND', message, hint === undefined ? {} : { hint });
}

export function invalidArgument(message: string, hint?: string): StrataError {
  return new StrataError('INVALID_ARGUMENT', message, hint === undefined ? {} : { hint });
}

/** Node system errors carry a string `code` such as ENOENT; this reads it without `any`. */
export function errnoCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return undefined;
}
