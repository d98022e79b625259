import { DistributionError, isValidName } from '../../distribution/index.js';
import { type Digest, isDigest } from '../../oci/index.js';

/** The repository name of a route, or NAME_INVALID naming what is wrong with it. */
export function checkName(name: string): string {
  if (!isValidName(name)) {
    throw new DistributionError(
      'NAME_INVALID',
      { name },
      {
        message: `invalid repository name ${JSON.stringify(name.slice(0, 300))}: lowercase path components of [a-z0-9] separated by . _ __ - and /, at most 255 characters`,
      },
    );
  }
  return name;
}

/** A digest from a path or query, or DIGEST_INVALID. */
export function checkDigest(value: string | null | undefined, where: string): Digest {
  if (!value || !isDigest(value)) {
    throw new DistributionError(
      'DIGEST_INVALID',
      { [where]: value ?? null },
      { message: `${where} ${JSON.stringify(value ?? '')} is not a digest (sha256:<64 hex> or sha512:<128 hex>)` },
    );
  }
  return value;
}

/** `n` of a paginated listing: a non-negative integer, or undefined for "everything". */
export function pageSize(query: URLSearchParams): number | undefined {
  const n = query.get('n');
  if (n === null || n === '') return undefined;
  if (!/^\d+$/.test(n)) {
    throw new DistributionError(
      'UNSUPPORTED',
      { n },
      { status: 400, message: `query parameter n must be a non-negative integer, got ${JSON.stringify(n)}` },
    );
  }
  return Number(n);
}

/** One page of a sorted list: entries after `last`, at most `n`, and whether more follow. */
export function paginate(all: string[], query: URLSearchParams): { page: string[]; more: boolean } {
  const n = pageSize(query);
  const last = query.get('last');
  const after = last ? all.filter((x) => x > last) : all;
  if (n === undefined) return { page: after, more: false };
  // n=0 asks for an empty page: there is no last entry to continue after, so no Link either.
  return { page: after.slice(0, n), more: n > 0 && after.length > n };
}
