/**
 * The container runtimes a node can run (`bundle install --runtime`): containerd's CRI, or Docker engine with
 * cri-dockerd. Everything that differs between them is behind ContainerRuntime (types.ts).
 */
import type { Runtime } from '../../definitions.js';
import { containerd } from './containerd.js';
import { docker } from './docker.js';
import type { ContainerRuntime } from './types.js';

export type { ContainerRuntime, RuntimeInputs } from './types.js';

const RUNTIMES: Record<Runtime, ContainerRuntime> = { containerd, docker };

export function runtimeFor(name: Runtime): ContainerRuntime {
  return RUNTIMES[name];
}
