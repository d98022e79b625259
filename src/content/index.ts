/**
 * Content: the local content-addressed blob store (`blobs/<alg>/<hex>`, writes staged in `ingest/`).
 *
 *   const store = new ContentStore('/var/lib/strata');
 *   const { digest } = await store.put(fs.createReadStream('layer.tar.gz'), { digest: expected });
 */
export {
  type BlobInfo,
  ContentStore,
  type Expected,
  type Ingested,
  type ReadOptions,
  ResumableIngest,
  VerifyingStream,
} from './store.js';
