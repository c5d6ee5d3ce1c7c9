/**
 * A container runtime, as install sees it: what kubeadm and crictl talk to, how the cluster names its images, the
 * files and commands that configure it on a node, how to tell it is ready, and how kubeadm undoes a half-done
 * init or join on it. Upgrade adds "upgrade the runtime inside a drain" here.
 */
import type { Runtime } from '../../definitions.js';
import type { InstallContext, InstallHost } from '../context.js';
import type { Step } from '../phases/steps.js';

/** What configuring a runtime needs that is the install's, not the runtime's. */
export interface RuntimeInputs {
  /** the seeded registry's CA certificate (read from the registry host when a step first needs it) */
  registryCa(): Promise<string>;
  /** the bundle's pause image, by its upstream name (throws when the bundle has none) */
  pauseImage(): string;
}

export interface ContainerRuntime {
  readonly name: Runtime;
  /** where kubeadm, the kubelet and crictl reach the runtime's CRI */
  readonly criSocket: string;
  /** a shell command that exits 0 once the runtime answers; configure() waits for it */
  readonly readyProbe: string;
  /** kubeadm's imageRepository, given the seeded registry's host:port */
  imageRepository(registry: string): string;
  /** an upstream image reference as the nodes pull it (flannel's manifest) */
  imageFor(ref: string, registry: string): string;
  /** the files and commands that configure the runtime on a node and (re)start it until it is ready */
  configure(host: InstallHost, ctx: InstallContext, inputs: RuntimeInputs): Step[];
  /** kubeadm reset on this runtime, for an init or join a killed run left half-done */
  kubeadmReset(): string;
}
