/**
 * The hosts made ready for Kubernetes: name, kernel settings, the bundle's packages, the seeded registry, and the
 * container runtime configured to pull from it.
 */
import { shQuote } from '../../ssh/command.js';
import type { InstallContext, InstallHost } from '../context.js';
import { isHaHolder } from '../ha.js';
import { CA_FILE, ETC, PKI, REGISTRY_CONFIG, REGISTRY_STORAGE, REGISTRY_UNIT_FILE, SIGNER_KEY } from '../host-paths.js';
import { renderTemplate } from '../render.js';
import { runtimeFor } from '../runtime/index.js';
import { bundleDir, command, file, hostScript, isNode, journaled, locked, type InstallPhase } from './steps.js';

const keyring = (ctx: InstallContext): string => (ctx.signerKey ? SIGNER_KEY : 'unsigned');

/** The node names and addresses every host's /etc/hosts gets. */
function hostsBlock(ctx: InstallContext): string {
  return ctx.hosts.map((n) => `${n.ip} ${n.name}`).join('\n') + '\n';
}

export function preparePhase(): InstallPhase {
  return journaled('prepare', {
    title: 'Prepare the hosts',
    steps: (host, ctx) => [
      file(`${ETC}/hosts`, hostsBlock(ctx)),
      command(`${hostScript(ctx, 'prepare-host.sh')} ${shQuote(host.name)} ${ETC}/hosts`),
    ],
  });
}

/** The packages this host installs from the bundle (their dependencies come along): what its role, the registry and HA need. */
export function hostPackages(ctx: InstallContext, host: InstallHost): string[] {
  return ctx.os.packages(host.spec.role, ctx.options.runtime, { registryHere: host === ctx.registryHost, ha: isHaHolder(ctx, host) });
}

export function packagesPhase(): InstallPhase {
  return journaled('packages', {
    title: 'Install packages from the bundle',
    steps: (host, ctx) => {
      const packages = hostPackages(ctx, host);
      return [
        command(ctx.os.preparePorts()),
        locked(`${hostScript(ctx, 'install-packages.sh')} ${bundleDir(ctx)} ${keyring(ctx)} ${ctx.os.kubePackages.join(',')} ${packages.join(' ')}`, { timeoutMs: 30 * 60_000 }),
      ];
    },
  });
}

export function registryPhase(): InstallPhase {
  return journaled('registry', {
    title: 'Seed and start the registry',
    hosts: (_all, ctx) => [ctx.registryHost],
    steps: (host, ctx) => [
      file(REGISTRY_CONFIG, renderTemplate('registry/config.yml', {
        storageDir: REGISTRY_STORAGE,
        port: String(ctx.options.registryPort),
        certFile: `${PKI}/registry.crt`,
        keyFile: `${PKI}/registry.key`,
      })),
      file(REGISTRY_UNIT_FILE, renderTemplate('registry/kube-bundle-registry.service', {
        configFile: REGISTRY_CONFIG,
        storageDir: REGISTRY_STORAGE,
      })),
      locked(`${hostScript(ctx, 'setup-registry.sh')} ${bundleDir(ctx)} ${shQuote(host.spec.address)} ${shQuote(host.name)}`, { timeoutMs: 10 * 60_000 }),
    ],
  });
}

/** Every node trusts the registry's CA, then its runtime (runtime/) is configured to pull from the registry. */
export function runtimePhase(): InstallPhase {
  return journaled('runtime', {
    title: 'Configure the container runtime',
    hosts: (all) => all.filter(isNode),
    steps: (host, ctx) => [
      file(CA_FILE, () => registryCa(ctx), 0o644, `the registry's CA, from ${ctx.registryHost.label}`),
      ...runtimeFor(ctx.options.runtime).configure(host, ctx, { registryCa: () => registryCa(ctx), pauseImage: () => sandboxImage(ctx) }),
    ],
  });
}

function sandboxImage(ctx: InstallContext): string {
  const pause = ctx.manifest.components.images.find((i) => /^registry\.k8s\.io\/pause:/.test(i.ref));
  if (!pause) throw new Error('the bundle carries no registry.k8s.io/pause image');
  return pause.ref;
}

const caCache = new WeakMap<InstallContext, Promise<string>>();

/** The registry's CA certificate, made on the registry host; every node trusts it for the seeded registry. */
function registryCa(ctx: InstallContext): Promise<string> {
  let ca = caCache.get(ctx);
  if (!ca) {
    ca = ctx.registryHost.conn.run(`cat ${CA_FILE}`).then((r) => r.stdout);
    caCache.set(ctx, ca);
  }
  return ca;
}
