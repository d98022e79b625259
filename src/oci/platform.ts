import { StrataError } from '../errors/index.js';
import { quoted } from './digest.js';
import type { Descriptor, ImageIndex, Platform } from './types.js';

/** Node's process.arch to GOARCH (what images say), with the variant Node cannot tell us assumed. */
const ARCH_FROM_NODE: Record<string, [string, string?]> = {
  x64: ['amd64'],
  arm64: ['arm64', 'v8'],
  arm: ['arm', 'v7'],
  ia32: ['386'],
  ppc64: ['ppc64le'], // Node supports only little-endian POWER on Linux
  s390x: ['s390x'],
  riscv64: ['riscv64'],
  loong64: ['loong64'],
  mips64el: ['mips64le'],
};

/** The platform this process runs on, in Go's GOOS/GOARCH names as images use them. */
export function hostPlatform(): Platform {
  const [architecture, variant] = ARCH_FROM_NODE[process.arch] ?? [process.arch];
  return variant ? { os: 'linux', architecture, variant } : { os: 'linux', architecture };
}

/** Names people type (uname -m, Debian arch names) to GOARCH and a variant, as containerd normalizes them. */
const ARCH_ALIASES: Record<string, [string, string?]> = {
  x86_64: ['amd64'],
  'x86-64': ['amd64'],
  aarch64: ['arm64'],
  armhf: ['arm', 'v7'],
  armel: ['arm', 'v6'],
  i386: ['386'],
};

/** Parse "os/arch[/variant]" (linux/amd64, linux/arm64/v8); case-insensitive, common aliases accepted. */
export function parsePlatform(s: string): Platform {
  const parts = s.toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new StrataError('INVALID_ARGUMENT', `invalid platform ${quoted(s)}: expected os/arch[/variant]`, {
      hint: 'for example linux/amd64, linux/arm64 or linux/arm/v7',
    });
  }
  const [os, arch, given] = parts as [string, string, string?];
  const [architecture, aliasVariant] = ARCH_ALIASES[arch] ?? [arch];
  let variant = given ?? aliasVariant;
  if (variant && /^\d+$/.test(variant) && (architecture === 'arm' || architecture === 'arm64')) variant = `v${variant}`;
  const p: Platform = { os: os === 'macos' ? 'darwin' : os, architecture };
  if (variant) p.variant = variant;
  return p;
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** The variant an absent one means: arm64 is v8, arm is v7 (containerd's defaults); amd64 v1 is no variant. */
function normalizedVariant(p: Platform): string | undefined {
  const v = p.variant || undefined;
  if (p.architecture === 'arm64') return v ?? 'v8';
  if (p.architecture === 'arm') return v ?? 'v7';
  if (p.architecture === 'amd64' && v === 'v1') return undefined;
  return v;
}

/** Does an image for `have` suit `want`? OS and architecture must match; the variant only when `want` names one. */
export function platformMatches(want: Platform, have: Platform | undefined): boolean {
  if (!have || have.os !== want.os || have.architecture !== want.architecture) return false;
  return !want.variant || normalizedVariant(want) === normalizedVariant(have);
}

function variantLevel(p: Platform): number | undefined {
  const v = normalizedVariant(p) ?? (p.architecture === 'amd64' ? 'v1' : undefined);
  const m = v === undefined ? null : /^v(\d+)/.exec(v);
  return m ? Number(m[1]) : undefined;
}

/**
 * How well `have` suits `want`, lower is better: 0 the same variant, 1 any variant when `want` names none, then
 * older variants of arm and amd64 (a v7 CPU runs v6 code), nearest first. Undefined when it does not run.
 */
function matchRank(want: Platform, have: Platform | undefined): number | undefined {
  if (!have || have.os !== want.os || have.architecture !== want.architecture) return undefined;
  if (normalizedVariant(want) === normalizedVariant(have)) return 0;
  if (!want.variant) return 1;
  const w = variantLevel(want);
  const h = variantLevel(have);
  return w !== undefined && h !== undefined && h < w ? 1 + w - h : undefined;
}

function isAttestation(d: Descriptor): boolean {
  return (
    d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' ||
    (d.platform?.os === 'unknown' && d.platform.architecture === 'unknown')
  );
}

/**
 * The manifest of an index for a platform: the best match by matchRank, the first in index order among equals.
 * BuildKit's attestation manifests (platform unknown/unknown) are never chosen.
 */
export function selectManifest(index: ImageIndex, want: Platform): Descriptor | undefined {
  let best: Descriptor | undefined;
  let bestRank = Number.POSITIVE_INFINITY;
  for (const m of index.manifests) {
    if (isAttestation(m)) continue;
    const r = matchRank(want, m.platform);
    if (r !== undefined && r < bestRank) [best, bestRank] = [m, r];
  }
  return best;
}
