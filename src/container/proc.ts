import { readFileSync } from 'node:fs';

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot): a pid plus this names one process. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: the fields after it start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

/** Whether `pid` is alive and, when `start` is given, is the same process (not a recycled pid). */
export function processAlive(pid: number | undefined, start?: string): boolean {
  if (!pid || pid <= 0) return false;
  const now = processStartTime(pid);
  if (now === undefined) return false;
  // A zombie has exited: it is waiting for its parent and will never run again.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
  } catch {
    return false;
  }
  return start === undefined || now === start;
}
