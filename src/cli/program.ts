/**
 * The command-line surface: flags → typed options → one core call.
 * Nothing here does real work; nothing here calls process.exit (only main.ts does).
 */
import { Command, Option } from 'commander';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { createLiveLine, createProgress, type LiveLine } from '../util/progress.js';
import type { InstallSummary } from '../core/install/summary.js';
import { CONCURRENCY_HELP, DEFAULT_CONCURRENCY } from '../core/install/limits.js';

// Each command loads its core when it runs: `bundle --help` or `bundle verify` need not load the builder,
// the SSH stack or openpgp's signing code, so every command starts faster.

export const VERSION = '0.1.0';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

interface BuildFlags {
  target: string;
  arch?: string[];
  runtime: string;
  output?: string;
  key?: string;
  unsigned?: boolean;
  mirror?: string[];
  image?: string[];
  imagesFile?: string;
  lock?: string;
  since?: string;
  trustKey?: string[];
  trustArchiveKey?: string[];
  pin?: string[];
  ha?: boolean;
  cache?: string;
  concurrency: string;
  dryRun?: boolean;
  json?: boolean;
}

interface InstallFlags {
  hosts: string;
  bundle?: string;
  pubkey?: string;
  allowUnsigned?: boolean;
  identity?: string;
  user: string;
  knownHosts: string;
  acceptNewHostKeys?: boolean;
  runtime: 'containerd' | 'docker';
  podCidr: string;
  serviceCidr: string;
  controlPlaneEndpoint?: string;
  vip?: string;
  registryPort: string;
  concurrency: string;
  dryRun?: boolean;
  json?: boolean;
}

interface ResetFlags {
  hosts: string;
  yes?: boolean;
  purge?: boolean;
  dryRun?: boolean;
  concurrency: string;
  identity?: string;
  user: string;
  knownHosts: string;
}

interface UpgradeFlags {
  hosts: string;
  bundle: string;
  pubkey?: string;
  allowUnsigned?: boolean;
  acceptNewHostKeys?: boolean;
  maxUnavailable: string;
  concurrency: string;
  dryRun?: boolean;
  json?: boolean;
  identity?: string;
  user: string;
  knownHosts: string;
}

/** The SSH flags install, upgrade and reset share. */
function withSshOptions(command: Command): Command {
  return command
    .option('-i, --identity <file>', 'SSH private key (ssh-agent is used too)')
    .option('--user <name>', 'SSH user (sudo is used when not root)', 'root')
    .option('--known-hosts <file>', 'known_hosts file', '~/.ssh/known_hosts');
}

/**
 * install and upgrade alike: Ctrl-C stops cleanly (running steps finish or give up, the rest is not run), the
 * progress goes to stderr (nothing with --json), the summary to stdout, and a run that did not succeed exits 2.
 */
async function siteCommand(
  verb: 'install' | 'upgrade',
  json: boolean | undefined,
  run: (signal: AbortSignal, log: (line: string) => void, live: LiveLine | undefined) => Promise<InstallSummary>,
): Promise<void> {
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort();
  process.once('SIGINT', onSignal);
  try {
    const { formatSummary } = await import('../core/install/summary.js');
    // with many hosts, a phase's count is redrawn on one line of a terminal
    const summary = await run(interrupt.signal, json ? () => {} : (line) => process.stderr.write(line + '\n'), json ? undefined : await createLiveLine(process.stderr));
    process.stdout.write(json ? JSON.stringify(summary, null, 2) + '\n' : formatSummary(summary, verb === 'install' ? { name: 'Install', done: 'installed' } : { name: 'Upgrade', done: 'upgraded' }));
    if (!summary.ok) throw new UserError(summary.cancelled ? `${verb} interrupted` : `${verb} failed (see above)`, 'run the same command again to resume');
  } finally {
    process.off('SIGINT', onSignal);
  }
}

/** The flags install and upgrade share, as options. */
function siteFlags(flags: InstallFlags | UpgradeFlags) {
  return {
    hostsFile: flags.hosts,
    pubkey: flags.pubkey,
    allowUnsigned: Boolean(flags.allowUnsigned),
    identity: flags.identity,
    user: flags.user,
    knownHosts: flags.knownHosts,
    acceptNewHostKeys: Boolean(flags.acceptNewHostKeys),
    concurrency: positiveInt(flags.concurrency, '--concurrency'),
    dryRun: Boolean(flags.dryRun),
  };
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${flag} must be a whole number of at least 1, not '${text}'`);
  return n;
}

function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kube-bundle');
}

export function createProgram(): Command {
  const program = new Command('bundle')
    .description(
      'kube-bundle: carry a whole kubeadm cluster into a data center with no internet.\n\n' +
        'On a machine with internet:   bundle build v1.32.3 --key signer.asc\n' +
        'Inside the air gap:           bundle install --hosts hosts.txt --pubkey signer.pub.asc\n' +
        'Later, from a newer bundle:   bundle upgrade --hosts hosts.txt --bundle <newer>.tar --pubkey signer.pub.asc',
    )
    .version(VERSION, '-V, --version')
    .option('--debug', 'show stack traces for internal errors')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();

  program
    .command('build')
    .summary('resolve and download everything a cluster needs into one signed bundle file')
    .description(
      'Resolve and download kubeadm, kubelet, kubectl, their OS packages, containerd/runc or Docker + cri-dockerd,\n' +
        'the control-plane and flannel images and an image registry into ONE signed, reproducible tar file.',
    )
    .argument('<version>', 'Kubernetes version, e.g. v1.32.3 or 1.32.3')
    .addOption(new Option('-t, --target <os>', 'target distribution').choices(['debian-12', 'debian-13', 'ubuntu-22.04', 'ubuntu-24.04']).default('ubuntu-24.04'))
    .addOption(new Option('-a, --arch <arch>', 'target architecture, repeatable: one bundle may carry both').choices(['amd64', 'arm64']).argParser(collect))
    .option('--runtime <list>', 'container runtimes to carry: containerd, docker (Docker engine + cri-dockerd)', 'containerd,docker')
    .option('-o, --output <file>', 'bundle file (default ./kube-bundle-<version>-<target>-<arch>.tar)')
    .option('--key <file>', 'armored OpenPGP secret key to sign with; passphrase from KUBE_BUNDLE_PASSPHRASE')
    .option('--unsigned', 'build without a signature (install refuses it unless told --allow-unsigned)')
    .option('--mirror <from=to>', 'fetch a URL prefix or registry host from elsewhere, repeatable; the bundle keeps upstream names', collect)
    .option('--image <ref>', 'an extra image to carry, repeatable', collect)
    .option('--images-file <file>', 'extra images, one reference per line')
    .option('--lock <file>', 'build exactly what this lock file names, refusing anything else')
    .option('--since <lock file>', 'a differential bundle: carry only the packages, image blobs and files that the bundle this lock file describes (the one the site has) lacks; same target and architectures, an older or equal version')
    .option('--ha', 'also carry haproxy and keepalived for a highly available control-plane address')
    .option('--cache <dir>', 'download cache (default $XDG_CACHE_HOME/kube-bundle)')
    .option('--concurrency <n>', 'parallel downloads', '8')
    .option('--dry-run', 'print what would be fetched, with versions and sizes; reads only the package indexes, image manifests and release files')
    .option('--json', 'print a JSON summary')
    .addHelpText('after', '\nExamples:\n  bundle build v1.32.3 -t debian-12 --key signer.asc\n  bundle build 1.32.3 -a amd64 -a arm64 --mirror registry.k8s.io=http://10.0.0.5:5000 --unsigned\n' +
      '  bundle build v1.32.3 -t ubuntu-24.04 --mirror http://archive.ubuntu.com/ubuntu=http://10.0.0.5/ubuntu \\\n' +
      '    --trust-archive-key mirror-signing-key.asc --key signer.asc   # a local mirror of Ubuntu\'s archive that re-signs\n' +
      '\nDifferential bundles (for a site that has a bundle already, to carry less across the air gap):\n' +
      '  bundle build v1.32.4 -t debian-12 --key signer.asc --since kube-bundle-v1.32.3-debian-12-amd64.lock.yaml\n' +
      '  writes kube-bundle-v1.32.4-debian-12-amd64-since-v1.32.3.tar: only what the v1.32.3 bundle lacks (compared by\n' +
      '  sha256), signed like any bundle; its bundle.yaml names the base (version and the lock file\'s sha256), and its\n' +
      '  lock file lists the whole of v1.32.4, so the next differential can be --since it. Add --dry-run to see what it\n' +
      '  would carry. It is for hosts that hold the base (`bundle upgrade`); a fresh install needs a full bundle.')
    .option('--trust-key <file>', 'an armored OpenPGP public key trusted for the Kubernetes package repository besides the pinned one (a mirror that re-signs), repeatable', collect)
    .option('--trust-archive-key <file>', 'an armored OpenPGP public key trusted for the target distribution\'s archive besides its keyring (bundles/targets/<target>.yaml), repeatable: for a --mirror of it that re-signs (aptly, reprepro); with it, a keyring missing on this machine is not needed', collect)
    .option('--pin <url=sha256:hex>', 'the sha256 of a release file (flannel manifest, cri-dockerd deb) by its upstream URL, for this build besides bundles/components.yaml, repeatable', collect)
    .action(async (version: string, flags: BuildFlags) => {
      const { build } = await import('../core/builder/build.js');
      const { formatBuildResult } = await import('../core/builder/report.js');
      const result = await build({
        version,
        target: flags.target,
        arches: flags.arch ?? [],
        runtimes: flags.runtime,
        output: flags.output,
        keyFile: flags.key,
        passphrase: process.env.KUBE_BUNDLE_PASSPHRASE,
        unsigned: Boolean(flags.unsigned),
        mirrors: flags.mirror ?? [],
        images: flags.image ?? [],
        imagesFile: flags.imagesFile,
        lockFile: flags.lock,
        since: flags.since,
        trustKeys: flags.trustKey ?? [],
        archiveKeys: flags.trustArchiveKey ?? [],
        pins: flags.pin ?? [],
        ha: Boolean(flags.ha),
        cacheDir: flags.cache ?? defaultCacheDir(),
        concurrency: positiveInt(flags.concurrency, '--concurrency'),
        dryRun: Boolean(flags.dryRun),
        sourceDateEpoch: process.env.SOURCE_DATE_EPOCH,
        progress: await createProgress({ json: flags.json }),
      });
      process.stdout.write(flags.json ? JSON.stringify(result, null, 2) + '\n' : formatBuildResult(result));
    });

  program
    .command('verify')
    .summary('check a bundle\'s signature and every file in it')
    .argument('<file>', 'bundle file')
    .option('--pubkey <file>', 'armored OpenPGP public key of the trusted signer')
    .option('--allow-unsigned', 'accept a bundle without a signature (checks the file hashes only)')
    .option('--json', 'print a JSON report (also when verification fails)')
    .action(async (file: string, opts: { pubkey?: string; allowUnsigned?: boolean; json?: boolean }) => {
      const { formatVerified, verificationFailure, verifyBundleFile, verifyReportJson } = await import('../core/bundle/verify.js');
      const report = await verifyBundleFile({ file, allowUnsigned: Boolean(opts.allowUnsigned), ...(opts.pubkey ? { pubkeyFile: opts.pubkey } : {}) });
      if (opts.json) process.stdout.write(JSON.stringify(verifyReportJson(report), null, 2) + '\n');
      else if (report.ok) process.stdout.write(formatVerified(file, report) + '\n');
      if (!report.ok) throw verificationFailure(file, report);
    });

  program
    .command('inspect')
    .summary('show what a bundle carries: versions, packages, images, files, signer')
    .argument('<file>', 'bundle file')
    .option('--json', 'print JSON')
    .action(async (file: string, opts: { json?: boolean }) => {
      const { formatInspect, inspectBundle } = await import('../core/bundle/inspect.js');
      const summary = await inspectBundle(file);
      process.stdout.write((opts.json ? JSON.stringify(summary, null, 2) : formatInspect(summary)) + '\n');
    });

  program
    .command('keygen')
    .summary('make an OpenPGP (ed25519) key pair for signing bundles')
    .requiredOption('--out <dir>', 'directory for signer.asc (mode 0600) and signer.pub.asc')
    .option('--name <name>', 'user id on the key', 'kube-bundle signer')
    .addHelpText('after', '\nThe secret key is passphrase-protected when KUBE_BUNDLE_PASSPHRASE is set. Existing files are never overwritten.')
    .action(async (opts: { out: string; name: string }) => {
      const passphrase = process.env.KUBE_BUNDLE_PASSPHRASE;
      const { formatKeygen, keygen } = await import('../core/keygen.js');
      const result = await keygen({ outDir: opts.out, name: opts.name, ...(passphrase ? { passphrase } : {}) });
      process.stdout.write(formatKeygen(result) + '\n');
    });

  withSshOptions(program
    .command('install')
    .summary('install a cluster from a bundle onto the hosts listed in a file, over SSH')
    .requiredOption('--hosts <file>', 'hosts file: one "ADDRESS ROLE [key=value ...]" per line'))
    .option('--bundle <file>', 'bundle file (default: the one kube-bundle-*.tar in the working directory)')
    .option('--pubkey <file>', 'the trusted signer\'s public key (required unless --allow-unsigned)')
    .option('--allow-unsigned', 'accept a bundle built with --unsigned')
    .option('--accept-new-host-keys', 'record unknown host keys (a CHANGED key is always refused)')
    .addOption(new Option('--runtime <name>', 'container runtime').choices(['containerd', 'docker']).default('containerd'))
    .option('--pod-cidr <cidr>', 'pod network', '10.244.0.0/16')
    .option('--service-cidr <cidr>', 'service network', '10.96.0.0/12')
    .option('--control-plane-endpoint <host[:port]>', 'address the nodes use for the API server')
    .option('--vip <address>', 'virtual IPv4 address for a highly available control-plane endpoint: keepalived + haproxy on the lb hosts, else on the control planes (port 8443); needs a bundle built with --ha')
    .option('--registry-port <port>', 'port of the seeded registry', '5000')
    .option('--concurrency <n>', CONCURRENCY_HELP, String(DEFAULT_CONCURRENCY))
    .option('--dry-run', 'print per host the uploads and exact commands, change nothing')
    .option('--json', 'print a JSON summary')
    .addHelpText(
      'after',
      '\nhosts file, one host per line (# comments allowed):\n' +
        '  10.0.0.11  control-plane  name=cp1\n  10.0.0.21  worker         name=w1 user=admin identity=~/.ssh/site\n' +
        '  10.0.0.30  registry       (optional: a dedicated registry host; else the first control plane serves it)\n' +
        '  10.0.0.5   lb             (optional, with --vip: holds the virtual address; else the control planes do)\n\n' +
        'Safe to re-run: it resumes after a failure, changes nothing after a success, and joins hosts added to the file.',
    )
    .action((flags: InstallFlags) =>
      siteCommand('install', flags.json, async (signal, log, live) => {
        const { install } = await import('../core/install/install.js');
        return install({
          ...siteFlags(flags),
          bundle: flags.bundle,
          runtime: flags.runtime,
          podCidr: flags.podCidr,
          serviceCidr: flags.serviceCidr,
          controlPlaneEndpoint: flags.controlPlaneEndpoint,
          vip: flags.vip,
          registryPort: positiveInt(flags.registryPort, '--registry-port'),
          signal,
          log,
          live,
        });
      }),
    );

  withSshOptions(program
    .command('upgrade')
    .summary('upgrade a cluster kube-bundle installed to the Kubernetes version of a newer bundle')
    .requiredOption('--hosts <file>', 'the hosts file of the install')
    .requiredOption('--bundle <file>', 'the newer bundle (a full one, or a differential one made --since the installed one)'))
    .option('--pubkey <file>', 'the trusted signer\'s public key (required unless --allow-unsigned)')
    .option('--allow-unsigned', 'accept a bundle built with --unsigned')
    .option('--accept-new-host-keys', 'record unknown host keys (a CHANGED key is always refused)')
    .option('--max-unavailable <n>', 'workers drained and upgraded at once', '1')
    .option('--concurrency <n>', CONCURRENCY_HELP, String(DEFAULT_CONCURRENCY))
    .option('--dry-run', 'check everything, then print per host the exact commands; change nothing')
    .option('--json', 'print a JSON summary')
    .addHelpText(
      'after',
      '\nChecked before any host changes: the signature; that kube-bundle installed the cluster; the versions the API\n' +
        'server and every kubelet run (asked, not assumed): same minor or the next one only, never a downgrade.\n' +
        'Then, in kubeadm\'s order: the new bundle on the hosts, its images added to the registry (which keeps serving),\n' +
        '`kubeadm upgrade apply` on the first control plane, `kubeadm upgrade node` on the others, then node by node\n' +
        '(control planes first, workers --max-unavailable at a time): drain, packages, kubelet restarted, Ready, uncordon.\n' +
        'A node that fails stops the rollout. Safe to re-run: it resumes where it stopped; after success it does nothing.\n' +
        '\nExamples:\n' +
        '  bundle upgrade --hosts hosts.txt --bundle kube-bundle-v1.32.4-debian-12-amd64.tar --pubkey signer.pub.asc --dry-run\n' +
        '  bundle upgrade --hosts hosts.txt --bundle kube-bundle-v1.32.4-debian-12-amd64.tar --pubkey signer.pub.asc\n' +
        '  bundle upgrade --hosts hosts.txt --bundle kube-bundle-v1.33.1-debian-12-amd64-since-v1.32.4.tar \\\n' +
        '    --pubkey signer.pub.asc --max-unavailable 3   # a differential bundle; the hosts must hold v1.32.4\'s',
    )
    .action((flags: UpgradeFlags) =>
      siteCommand('upgrade', flags.json, async (signal, log, live) => {
        const { upgrade } = await import('../core/upgrade/upgrade.js');
        return upgrade({
          ...siteFlags(flags),
          bundle: flags.bundle,
          maxUnavailable: positiveInt(flags.maxUnavailable, '--max-unavailable'),
          signal,
          log,
          live,
        });
      }),
    );

  withSshOptions(program
    .command('reset')
    .summary('undo an install: kubeadm reset and remove what install added')
    .requiredOption('--hosts <file>', 'hosts file used for the install'))
    .option('--yes', 'do not ask for confirmation')
    .option('--purge', 'also remove the packages install added')
    .option('--dry-run', 'print what would be done, change nothing')
    .option('--concurrency <n>', CONCURRENCY_HELP, String(DEFAULT_CONCURRENCY))
    .action(async (flags: ResetFlags) => {
      const { reset } = await import('../core/install/reset.js');
      const result = await reset({
        hostsFile: flags.hosts,
        identity: flags.identity,
        user: flags.user,
        knownHosts: flags.knownHosts,
        purge: Boolean(flags.purge),
        dryRun: Boolean(flags.dryRun),
        confirmed: Boolean(flags.yes),
        concurrency: positiveInt(flags.concurrency, '--concurrency'),
        log: (line) => process.stderr.write(line + '\n'),
        live: await createLiveLine(process.stderr),
      });
      if (!result.ok) throw new UserError(`reset failed on ${result.hosts.filter((h) => !h.ok).map((h) => h.host).join(', ')}`, 'fix the host and run reset again: it is safe to repeat');
    });

  return program;
}
