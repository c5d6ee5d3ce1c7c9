/**
 * Image references, normalized the way docker does:
 *   busybox                      → docker.io/library/busybox:latest
 *   flannel/flannel:v0.26.5      → docker.io/flannel/flannel:v0.26.5
 *   ghcr.io/flannel-io/flannel   → ghcr.io/flannel-io/flannel:latest
 *   localhost:5000/x@sha256:…    → registry "localhost:5000", digest kept, no tag added
 * The first path component is a registry when it has a '.' or a ':' or is "localhost".
 */
import { UserError } from '../../util/errors.js';
import { SHA256_DIGEST } from '../../util/digest.js';

export interface ImageReference {
  /** Registry host[:port] as upstream names it, e.g. "registry.k8s.io", "docker.io", "localhost:5000". */
  registry: string;
  /** Repository path inside the registry, e.g. "pause", "library/busybox", "flannel-io/flannel". */
  repository: string;
  tag?: string;
  /** "sha256:<hex>" */
  digest?: string;
}

const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HOST = /^[A-Za-z0-9.-]+(?::\d+)?$|^\[[0-9a-fA-F:]+\](?::\d+)?$/;

export function parseReference(input: string): ImageReference {
  const text = input.trim();
  const fail = (why: string): never => {
    throw new UserError(`invalid image reference '${input}': ${why}`, 'write it like registry.k8s.io/pause:3.10 or busybox@sha256:<64 hex>');
  };
  if (text === '') fail('it is empty');

  const [nameAndTag = '', digest, ...extra] = text.split('@');
  if (extra.length > 0) fail("more than one '@'");
  if (digest !== undefined && !SHA256_DIGEST.test(digest)) fail(`'${digest}' is not a sha256 digest`);

  const { registry, remainder } = splitRegistry(nameAndTag);
  if (!HOST.test(registry)) fail(`'${registry}' is not a registry host`);
  const tagAt = remainder.lastIndexOf(':');
  const repositoryText = tagAt >= 0 ? remainder.slice(0, tagAt) : remainder;
  const tag = tagAt >= 0 ? remainder.slice(tagAt + 1) : undefined;
  if (tag !== undefined && !TAG.test(tag)) fail(`'${tag}' is not a valid tag`);

  const components = repositoryText.split('/');
  const bad = components.find((part) => !PATH_COMPONENT.test(part));
  if (bad !== undefined) fail(`repository component '${bad}' must be lowercase letters, digits and . _ - separators`);

  const normalizedRegistry = DOCKER_HUB_ALIASES.has(registry) ? DOCKER_HUB : registry;
  const repository = normalizedRegistry === DOCKER_HUB && components.length === 1 ? `library/${repositoryText}` : repositoryText;
  const ref: ImageReference = { registry: normalizedRegistry, repository };
  if (digest !== undefined) ref.digest = digest;
  if (tag !== undefined || digest === undefined) ref.tag = tag ?? 'latest';
  return ref;
}

function splitRegistry(name: string): { registry: string; remainder: string } {
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    return { registry: first, remainder: name.slice(slash + 1) };
  }
  return { registry: DOCKER_HUB, remainder: name };
}

/** The full reference, e.g. "registry.k8s.io/pause:3.10", "docker.io/library/busybox@sha256:…". */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag === undefined ? '' : `:${ref.tag}`}${ref.digest === undefined ? '' : `@${ref.digest}`}`;
}

/** What to ask the registry for: the digest when pinned (it wins over a tag), else the tag. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}
