/**
 * What many hosts cost the operator's machine, and the defaults that keep it bounded.
 *
 * `--concurrency` (install and reset) bounds, per phase, the hosts worked on at once, and, while install connects,
 * the SSH handshakes in flight. Its default is 8:
 * - sshd drops unauthenticated connections beyond `MaxStartups` (default 10:30:100: from 10 connections still in
 *   their handshake on, each new one is refused with 30% probability, rising to 100% at 100). Where every host of a
 *   phase opens an SSH session into ONE host (the in-site distribution fetching from the registry host), the
 *   concurrency is how many handshakes that host sees at once: 8 stays under the 10, leaving room for the
 *   operator's own sessions and a monitoring probe arriving at the same moment.
 * - Each handshake costs the operator's machine a key exchange and a signature check (a few milliseconds of CPU),
 *   and through a VPN or jump host a few round trips; all of them have to finish within the connect timeout
 *   (6s), so hundreds started at once on one event loop and one link would time out for no fault of the hosts.
 * - Host-bound phases (packages, kubeadm join) take about as long per host whatever the concurrency, so their
 *   wall time is hosts / concurrency × that; 100 workers are 13 rounds. Raise it (e.g. 32) when the hosts' sshd
 *   allows more startups or nothing fetches into one host; the operator's link is not the limit in those phases.
 *
 * File descriptors: install keeps one SSH connection (one socket) per host open from preflight to the summary, so
 * N hosts hold N sockets, plus per host being worked on the bundle file read for an upload and an ssh-agent socket
 * during a handshake. Node raises its soft RLIMIT_NOFILE to the hard limit at startup, so the hard limit is what
 * counts (`ulimit -Hn`; systemd's default is 524288, some containers and older systems have 1024 or 4096).
 */
import { UserError } from '../../util/errors.js';
import { openFilesLimit } from '../../util/open-files.js';

export const DEFAULT_CONCURRENCY = 8;

/** What `--help` says about `--concurrency` (install and reset). */
export const CONCURRENCY_HELP =
  `hosts worked on at once, and SSH handshakes in flight; ${DEFAULT_CONCURRENCY} stays below sshd's MaxStartups (10 ` +
  'handshakes at once) for when many hosts connect into one host: raise it when the hosts allow more';

/** descriptors node itself and the rest of the CLI hold (stdio, epoll, libuv, the bundle verify's reads), with room */
const BASE_FDS = 64;

/** Open files an install of `hosts` hosts at `concurrency` needs: one socket per host, two per host being worked on. */
export function openFilesNeeded(hosts: number, concurrency: number): number {
  return BASE_FDS + hosts + 2 * Math.min(hosts, concurrency);
}

/** Refuses, before any connection, an install that would run out of file descriptors half-way, naming the cause. */
export function checkOpenFiles(hosts: number, concurrency: number, limit = openFilesLimit()): void {
  const needed = openFilesNeeded(hosts, concurrency);
  if (limit === undefined || needed <= limit) return;
  throw new UserError(
    `${hosts} hosts need about ${needed} open files (install keeps one SSH connection per host open throughout), ` +
      `but this process may open ${limit} (the hard limit of open files; node raises its soft limit to it); nothing was changed`,
    `raise the hard limit for this user (ulimit -Hn as root, nofile in /etc/security/limits.conf, LimitNOFILE= for a service), ` +
      'or install the first hosts of the file and add the rest in later runs',
  );
}
