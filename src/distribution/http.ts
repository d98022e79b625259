/** Headers and small HTTP grammars both sides of the wire use. */
export const Header = {
  ApiVersion: 'Docker-Distribution-API-Version',
  ContentDigest: 'Docker-Content-Digest',
  UploadUuid: 'Docker-Upload-UUID',
  OciSubject: 'OCI-Subject',
  OciFiltersApplied: 'OCI-Filters-Applied',
  OciChunkMinLength: 'OCI-Chunk-Min-Length',
} as const;

export const API_VERSION = 'registry/2.0';

/**
 * `Range: bytes=a-b` of a blob GET; undefined when absent or ignored (another unit, which RFC 9110 says to ignore,
 * or several ranges, which a server may answer with the whole content), null when unsatisfiable or malformed.
 */
export function parseRangeHeader(
  value: string | undefined,
  size: number,
): { start: number; end: number } | null | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (!/^bytes=/i.test(v) || v.includes(',')) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/i.exec(v);
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return null;
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return null;
  return { start, end };
}

/** `Content-Range: a-b` of a chunk PATCH (the spec's form, no unit), or `bytes a-b/*`. */
export function parseContentRange(value: string | undefined): { start: number; end: number } | undefined | null {
  if (value === undefined) return undefined;
  const m = /^(?:bytes )?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(value.trim());
  if (!m) return null;
  const start = Number(m[1]);
  const end = Number(m[2]);
  return start <= end ? { start, end } : null;
}

/** RFC 5988 Link header for the next page, as the spec's tag and catalog pagination uses it. */
export function nextLink(path: string, params: Record<string, string>): string {
  return `<${path}?${new URLSearchParams(params).toString()}>; rel="next"`;
}

export function parseNextLink(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(value);
  return m?.[1];
}
