/**
 * What every part of an install shares: the options it was started with, the hosts it works on, and the context
 * the phases read and fill in. Only types, and only from modules below the install (no phase, no runner), so that
 * any install module can import it without import cycles.
 */
import type { LiveLine } from '../../util/progress.js';
import type { BundleManifest } from '../bundle/manifest.js';
import type { Runtime } from '../definitions.js';
import type { KubeVersion } from '../kube-version.js';
import type { Secrets } from '../ssh/command.js';
import type { Connection } from '../ssh/connection.js';
import type { Facts } from './facts.js';
import type { HostSpec } from './hosts.js';
import type { HostOS } from './os.js';
import type { VerifiedTree } from './payload.js';
import type { InterfaceAddress } from './validate.js';

export interface InstallOptions {
  hostsFile: string;
  bundle?: string;
  pubkey?: string;
  allowUnsigned: boolean;
  identity?: string;
  user: string;
  knownHosts: string;
  acceptNewHostKeys: boolean;
  runtime: Runtime;
  podCidr: string;
  serviceCidr: string;
  controlPlaneEndpoint?: string;
  /** a virtual address for the control-plane endpoint, held by keepalived, served by haproxy (ha.ts) */
  vip?: string;
  registryPort: number;
  concurrency: number;
  dryRun: boolean;
  signal?: AbortSignal;
  /** one line per host per phase (a count per phase with many hosts), and what the install says along the way */
  log(line: string): void;
  /** a terminal line to redraw each phase's count on, with many hosts (program.ts makes one for a terminal) */
  live?: LiveLine;
}

/** What install does over a host's SSH connection (a Connection; tests give a stand-in). */
export type HostConnection = Pick<Connection, 'label' | 'exec' | 'run' | 'upload' | 'uploadBytes' | 'close'>;

/** One host of the hosts file, connected and examined: a node (control plane, worker), the registry host or an lb host. */
export interface InstallHost {
  spec: HostSpec;
  /** "h1 (10.77.0.11)": how every message names the host */
  label: string;
  conn: HostConnection;
  facts: Facts;
  /** the Kubernetes node name: name= from the hosts file, else the host's own name */
  name: string;
  /**
   * the node's IPv4 address: the hosts-file address, or what its DNS name resolves to on the host itself (empty
   * when it does not: refused in preflight). kubeadm's advertiseAddress, the kubelet's --node-ip, /etc/hosts.
   */
  ip: string;
}

/** The join token and the key of the uploaded control-plane certificates. */
export interface ClusterSecrets {
  token: string;
  certificateKey: string;
}

/** Who holds the virtual control-plane address (`--vip`) and where haproxy listens (ha.ts). */
export interface HaPlan {
  vip: string;
  port: number;
  /** the hosts that run haproxy and keepalived, in hosts-file order (which sets their VRRP priority) */
  holders: InstallHost[];
  /** each holder's link on the address's network; filled by haPreflight */
  links: Map<InstallHost, InterfaceAddress>;
}

/**
 * How a phase reports, per host, what it moved and what it has to say; phase-report.ts prints it (a line per host
 * with few hosts, the phase's count and throughput with many) and keeps it per phase and host for --json.
 */
export interface PhaseProgress<H> {
  /** `n` more bytes moved for `host` in the running phase (sent to it, or fetched by it); adds up over calls */
  bytes(host: H, n: number): void;
  /** a line about `host` ("sent 300 MiB in 12s"): printed under its phase with few hosts, always in --json */
  note(host: H, text: string): void;
}

/** What `bundle upgrade` adds to the context (src/core/upgrade/). */
export interface UpgradePlan {
  /** the version the cluster goes to: the bundle's */
  target: KubeVersion;
  /** the Kubernetes packages' exact versions in the bundle, by name (kubeadm → 1.32.4-1.1) */
  packageVersions: Map<string, string>;
  /** workers upgraded at once (--max-unavailable) */
  maxUnavailable: number;
  /** what this upgrade's phases are called in the hosts' journals: `upgrade-v1.32.4` */
  journalPrefix: string;
}

/** Everything the phases share. */
export interface InstallContext {
  options: InstallOptions;
  bundleFile: string;
  /** of the whole file, from the verify pass: each host checks its upload against it */
  bundleSha256: string;
  /** of SHA256SUMS, from the verify pass: each host checks its unpacked tree against it (bundle-on-host.ts) */
  sumsSha256: string;
  /** hosts whose unpacked bundle was checked in this run already */
  bundleChecked: Set<InstallHost>;
  /** SHA256SUMS and the repository's index as verify read them: what each host stores follows from them (payload.ts) */
  tree: VerifiedTree;
  /** hosts that could not fetch their part inside the site and got it uploaded by the operator, and why */
  fallbacks: Map<InstallHost, string>;
  manifest: BundleManifest;
  version: KubeVersion;
  /** flannel's manifest from the bundle; '' in a differential bundle that leaves it to its base (unchanged) */
  flannelManifest: string;
  /** the signer's armored public key, installed as the apt keyring of the bundle's repository; undefined when unsigned */
  signerKey: string | undefined;
  os: HostOS;
  /** every host of the hosts file, in its order */
  hosts: InstallHost[];
  controlPlanes: InstallHost[];
  workers: InstallHost[];
  firstControlPlane: InstallHost;
  registryHost: InstallHost;
  /** host:port of the seeded registry, as every node reaches it */
  registry: string;
  /** host:port of the API server for joins */
  endpoint: string;
  /** the virtual control-plane address, with --vip */
  ha?: HaPlan;
  secrets: Secrets;
  /** what the phases moved and said per host (phase-report.ts) */
  progress: PhaseProgress<InstallHost>;
  /** set for `bundle upgrade` */
  upgrade?: UpgradePlan;
  /** set by the init phase, or read back from the first control plane on a re-run */
  cluster?: ClusterSecrets;
  caCertHash?: string;
}
