/**
 * The registry's counters, rendered in the Prometheus text exposition format at /metrics. Plain counters and
 * gauges kept in maps: no client library needed for this handful of series.
 */
export class RegistryMetrics {
  readonly #requests = new Map<string, number>();
  readonly #durations = new Map<string, number>();
  #bytesIn = 0;
  #bytesOut = 0;
  #uploadsInProgress = 0;
  #gcRuns = 0;
  #gcBlobs = 0;
  #gcBytes = 0;
  #gcManifests = 0;
  #gcSeconds = 0;

  request(route: string, method: string, status: number, seconds: number): void {
    const key = `route="${route}",method="${method}",status="${status}"`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    const dkey = `route="${route}",method="${method}"`;
    this.#durations.set(dkey, (this.#durations.get(dkey) ?? 0) + seconds);
  }

  bytesIn(n: number): void {
    this.#bytesIn += n;
  }

  bytesOut(n: number): void {
    this.#bytesOut += n;
  }

  uploadStarted(): void {
    this.#uploadsInProgress++;
  }

  uploadEnded(): void {
    this.#uploadsInProgress = Math.max(0, this.#uploadsInProgress - 1);
  }

  gcRun(result: { blobs: number; bytes: number; manifests: number; durationMs: number }): void {
    this.#gcRuns++;
    this.#gcBlobs += result.blobs;
    this.#gcBytes += result.bytes;
    this.#gcManifests += result.manifests;
    this.#gcSeconds += result.durationMs / 1000;
  }

  render(): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: Array<[string, number]>): void => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of samples) lines.push(`${name}${labels ? `{${labels}}` : ''} ${v}`);
    };
    metric('strata_registry_requests_total', 'counter', 'HTTP requests by route, method and status.', [
      ...[...this.#requests].sort(),
    ]);
    metric('strata_registry_request_duration_seconds_sum', 'counter', 'Total time spent answering, by route.', [
      ...[...this.#durations].sort(),
    ]);
    metric('strata_registry_bytes_received_total', 'counter', 'Blob bytes received in uploads.', [['', this.#bytesIn]]);
    metric('strata_registry_bytes_sent_total', 'counter', 'Blob and manifest bytes sent.', [['', this.#bytesOut]]);
    metric('strata_registry_uploads_in_progress', 'gauge', 'Upload requests streaming right now.', [
      ['', this.#uploadsInProgress],
    ]);
    metric('strata_registry_gc_runs_total', 'counter', 'Garbage collection runs.', [['', this.#gcRuns]]);
    metric('strata_registry_gc_deleted_blobs_total', 'counter', 'Blobs deleted by garbage collection.', [
      ['', this.#gcBlobs],
    ]);
    metric('strata_registry_gc_deleted_bytes_total', 'counter', 'Bytes freed by garbage collection.', [
      ['', this.#gcBytes],
    ]);
    metric('strata_registry_gc_deleted_manifests_total', 'counter', 'Manifests deleted by retention rules.', [
      ['', this.#gcManifests],
    ]);
    metric('strata_registry_gc_duration_seconds_sum', 'counter', 'Time spent in garbage collection.', [
      ['', this.#gcSeconds],
    ]);
    return `${lines.join('\n')}\n`;
  }
}
