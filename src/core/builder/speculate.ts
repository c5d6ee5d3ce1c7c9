/**
 * Starting package downloads before the dependency closure is known.
 *
 * A cold build cannot solve before Debian's main index (~12 MB of gzip, ~50 MB of text) is downloaded and
 * scanned, and the packages it solves for are most of a bundle's bytes. But the packages the build asks for by
 * name (the roots: containerd, runc, docker.io, docker-registry, kubeadm...) are in every closure, and they are
 * also the biggest: so each is fetched as soon as the scan has seen enough to know which version the solver will
 * take, while the rest of the index is still arriving. The solver decides what goes into the bundle; a download
 * started here only warms the content-addressed cache, and the build's own request for the same sha256 joins it
 * (Fetcher shares one download per digest) or finds it done.
 *
 * Which version the solver takes, known early:
 * - kubeadm, kubelet, kubectl: the newest `<version>-*` of the Kubernetes repository (exactKubePackageVersion), so
 *   as soon as that small index is complete;
 * - any other root: an exact version when the request names one, else the highest version in all sources (apt's
 *   candidate without pinning; an earlier source wins a tie), so once every other source is complete and has
 *   nothing newer, the version seen is the one (a higher one later in the same index, which Debian's archive
 *   never has, would be fetched too).
 * Roots the solver leaves out are not fetched: `Priority: required` and `Essential: yes` packages (the host has
 * them), and names an extra source (cri-dockerd's deb, read locally) also offers.
 *
 * Records come from bytes whose sha256 is checked only when their index is complete: a tampered index could at
 * most make the build download something it then does not use.
 */
import type { ScannedRecord } from '../apt/index.js';
import type { RootRequest } from '../apt/solver.js';
import { compareVersions } from '../apt/version.js';

export interface SpeculationPlan {
  /** how many repositories are scanned (their positions are the `repo` numbers below) */
  repos: number;
  /** the Kubernetes packages pinned to one release, and the repository (position) they come from */
  pinned: { names: readonly string[]; versionPrefix: string; repo: number };
  /** every other package asked for by name */
  roots: readonly RootRequest[];
  /** names some source other than the repositories offers: never fetched early */
  elsewhere: readonly string[];
}

/** A package to fetch now. */
export type Prefetch = (scanned: ScannedRecord) => void;

interface Best {
  repo: number;
  scanned: ScannedRecord;
}

export class Speculator {
  private readonly done: boolean[];
  private readonly roots = new Map<string, string | undefined>();
  private readonly pinned: ReadonlySet<string>;
  private readonly best = new Map<string, Best>();
  private readonly sent = new Set<string>();

  constructor(
    private readonly plan: SpeculationPlan,
    private readonly prefetch: Prefetch,
  ) {
    this.done = new Array<boolean>(plan.repos).fill(false);
    this.pinned = new Set(plan.pinned.names);
    const elsewhere = new Set(plan.elsewhere);
    for (const root of plan.roots) {
      if (!elsewhere.has(root.name) && !this.pinned.has(root.name)) this.roots.set(root.name, root.version);
    }
  }

  /** A record of repository `repo`, as its index is scanned. */
  record(repo: number, scanned: ScannedRecord): void {
    const { record } = scanned;
    if (this.pinned.has(record.name)) {
      if (repo === this.plan.pinned.repo && record.version.startsWith(this.plan.pinned.versionPrefix)) this.offer(repo, scanned);
      return;
    }
    if (!this.roots.has(record.name) || record.priority === 'required' || record.essential) return;
    const exact = this.roots.get(record.name);
    if (exact !== undefined && record.version !== exact) return;
    if (this.offer(repo, scanned)) this.consider(record.name);
  }

  /** Repository `repo` is complete: every record of it has been seen. */
  repoDone(repo: number): void {
    this.done[repo] = true;
    for (const name of this.best.keys()) this.consider(name);
  }

  /** Keep `scanned` when it beats the best so far of its name; true when it did. */
  private offer(repo: number, scanned: ScannedRecord): boolean {
    const current = this.best.get(scanned.record.name);
    if (current) {
      const order = compareVersions(scanned.record.version, current.scanned.record.version);
      if (order < 0 || (order === 0 && repo >= current.repo)) return false;
    }
    this.best.set(scanned.record.name, { repo, scanned });
    return true;
  }

  private consider(name: string): void {
    const best = this.best.get(name);
    if (!best) return;
    const settled = this.pinned.has(name) ? this.done[best.repo] : this.done.every((done, repo) => done || repo === best.repo);
    if (!settled || this.sent.has(best.scanned.sha256)) return;
    this.sent.add(best.scanned.sha256);
    this.prefetch(best.scanned);
  }
}
