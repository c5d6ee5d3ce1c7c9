/**
 * The baseline a build's downloading is compared with: one `curl --parallel` over the same URLs, writing every
 * body to disk as the build does. One config file; a `next` section per header set (a registry's token), since
 * curl resets per-transfer options at `next` while the parallel limit stays global.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DownloadGroup } from './download-list.js';
import { runMeasured } from './measure.js';

export interface CurlRun {
  seconds: number;
  peakRssBytes: number;
  /** bytes received per URL */
  transfers: { url: string; bytes: number }[];
}

/** Download every URL of `groups` into `outDir` with at most `parallelMax` transfers at once. */
export async function curlParallel(groups: DownloadGroup[], outDir: string, parallelMax: number, scratchDir: string): Promise<CurlRun> {
  await mkdir(outDir, { recursive: true });
  const configFile = join(scratchDir, 'curl.config');
  await writeFile(configFile, curlConfig(groups, outDir, parallelMax));
  const run = await runMeasured('curl', ['--config', configFile], scratchDir);
  const results = run.stdout.trim().split('\n').map(parseWriteOut);
  const expected = groups.reduce((n, g) => n + g.urls.length, 0);
  const failed = results.filter((r) => r.status !== 200);
  if (results.length !== expected || failed.length > 0) {
    throw new Error(`curl finished ${results.length} of ${expected} transfers; failed: ${failed.map((f) => `${f.url} (HTTP ${f.status})`).join(', ') || 'none'}`);
  }
  return { seconds: run.seconds, peakRssBytes: run.peakRssBytes, transfers: results.map(({ url, bytes }) => ({ url, bytes })) };
}

function curlConfig(groups: DownloadGroup[], outDir: string, parallelMax: number): string {
  let n = 0;
  const sections = groups.map((group) =>
    [
      `# ${group.label}`,
      // follow the registries' and pkgs.k8s.io's CDN redirects; curl sends a custom Authorization header to
      // the original host only, as the CDNs require
      'location',
      'fail',
      'silent',
      'show-error',
      `write-out = "%{http_code} %{size_download} %{url}\\n"`,
      ...Object.entries(group.headers).map(([name, value]) => `header = ${quote(`${name}: ${value}`)}`),
      ...group.urls.flatMap((url) => [`url = ${quote(url)}`, `output = ${quote(join(outDir, String(n++)))}`]),
    ].join('\n'),
  );
  return ['parallel', `parallel-max = ${parallelMax}`, sections.join('\nnext\n')].join('\n') + '\n';
}

function quote(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function parseWriteOut(line: string): { status: number; bytes: number; url: string } {
  const [status, bytes, url] = line.split(' ');
  return { status: Number(status), bytes: Number(bytes), url: url ?? '' };
}
