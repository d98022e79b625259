/**
 * The OCI Distribution Spec error codes, each registered once with its HTTP status and message (as distribution's
 * errcode registry does). The server throws DistributionError and one handler writes `{"errors":[...]}`; the
 * client parses the same body back with `parseErrorBody`.
 */
export const ErrorCodes = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
} as const;

export type DistributionErrorCode = keyof typeof ErrorCodes;

export interface ErrorEntry {
  code: string;
  message: string;
  detail?: unknown;
}

export class DistributionError extends Error {
  readonly code: DistributionErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Extra response headers (WWW-Authenticate on 401, Retry-After on 429, Range on 416). */
  readonly headers: Record<string, string>;

  constructor(
    code: DistributionErrorCode,
    detail?: unknown,
    opts: { message?: string; headers?: Record<string, string>; status?: number } = {},
  ) {
    super(opts.message ?? ErrorCodes[code].message);
    this.name = 'DistributionError';
    this.code = code;
    this.status = opts.status ?? ErrorCodes[code].status;
    this.detail = detail;
    this.headers = opts.headers ?? {};
  }

  toEntry(): ErrorEntry {
    return { code: this.code, message: this.message, ...(this.detail === undefined ? {} : { detail: this.detail }) };
  }
}

export function errorBody(errors: readonly DistributionError[]): string {
  return JSON.stringify({ errors: errors.map((e) => e.toEntry()) });
}

/** Read a registry's `{"errors":[...]}` body; anything else gives an empty list (the status still tells). */
export function parseErrorBody(text: string): ErrorEntry[] {
  try {
    const v = JSON.parse(text) as { errors?: unknown };
    if (!Array.isArray(v.errors)) return [];
    return v.errors
      .filter((e): e is ErrorEntry => !!e && typeof e === 'object' && typeof (e as ErrorEntry).code === 'string')
      .map((e) => ({
        code: e.code,
        message: typeof e.message === 'string' ? e.message : '',
        ...(e.detail === undefined ? {} : { detail: e.detail }),
      }));
  } catch {
    return [];
  }
}
