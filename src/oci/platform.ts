import { StrataError } from '../errors/index.js';
import type { Descriptor, ImageIndex, Platform } from './types.js';

const ARCH_FROM_NODE: Record<string, [string, string?]> = {
  x64: ['amd64'],
  arm64: ['arm64', 'v8'],
  arm: ['arm', 'v7'],
  ia32: ['386'],
  ppc64: ['ppc64le'],
  s390x: ['s390x'],
  riscv64: ['riscv64'],
  mips64el: ['mips64le'],
};

/** The platform this process runs on, in Go's GOOS/GOARCH names as images use them. */
export function hostPlatform(): Platform {
  const [architecture, variant] = ARCH_FROM_NODE[process.arch] ?? [process.arch];
  return variant ? { os: 'linux', architecture, variant } : { os: 'linux', architecture };
}

/** Parse "os/arch[/variant]" (linux/amd64, linux/arm64/v8). */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new StrataError('INVALID_ARGUMENT', `invalid platform "${s}"`, {
      hint: 'use os/arch[/variant], for example linux/amd64 or linux/arm64/v8',
    });
  }
  const [os, architecture, variant] = parts as [string, string, string?];
  return variant ? { os, architecture, variant } : { os, architecture };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

function normalizedVariant(p: Platform): string | undefined {
  if (p.architecture === 'arm64' && (p.variant === undefined || p.variant === '')) return 'v8';
  return p.variant || undefined;
}

/** Does an image for `have` run on `want`? OS and architecture must match; a variant only when `want` names one. */
export function platformMatches(want: Platform, have: Platform | undefined): boolean {
  if (!have || have.os !== want.os || have.architecture !== want.architecture) return false;
  if (want.variant === undefined) return true;
  return normalizedVariant(want) === normalizedVariant(have);
}

/** The manifest of an index for a platform: exact variant first, then any matching; attestations skipped. */
export function selectManifest(index: ImageIndex, want: Platform): Descriptor | undefined {
  const candidates = index.manifests.filter(
    (m) => m.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest' && platformMatches(want, m.platform),
  );
  const exact = candidates.find((m) => normalizedVariant(m.platform!) === normalizedVariant(want));
  return exact ?? candidates[0];
}
