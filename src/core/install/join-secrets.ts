/**
 * The bootstrap token and certificate key that joins need, as pure decisions: how they are kept on the first
 * control plane between the init and the last join (cluster.env, 0600, written over stdin), which of them a run
 * must make anew with kubeadm, and how kubeadm's answers are read.
 *
 * A secret never goes into a command line on a host: /proc/<pid>/cmdline is readable by every local user, and
 * sudo logs the whole `sh -c '...'` text to the journal. So tokens come from `kubeadm token create` (no token
 * argument: kubeadm makes one and prints it), certificate keys from `kubeadm certs certificate-key`, both read
 * from stdout, and they reach kubeadm again only inside config files written over stdin. Only the token ID,
 * which is public (it names the token's Secret), is ever an argument: `kubeadm token delete <id>`.
 */

export const TOKEN_FORMAT = /^([a-z0-9]{6})\.[a-z0-9]{16}$/;
export const CERTIFICATE_KEY_FORMAT = /^[0-9a-f]{64}$/;

/** kubeadm deletes the uploaded control-plane certificates after 2 hours; a key older than this is re-uploaded */
export const UPLOADED_CERTS_TTL_MS = 110 * 60 * 1000;

/** What cluster.env holds; a field it lacks (or holds in a wrong form) is undefined. */
export interface StoredJoinSecrets {
  token?: string;
  certificateKey?: string;
  /** when the certificates were last uploaded under certificateKey (ms since the epoch), 0 when unknown */
  certsUploaded: number;
}

export function parseClusterEnv(text: string): StoredJoinSecrets {
  const env = new Map<string, string>();
  for (const line of text.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) env.set(line.slice(0, at).trim(), line.slice(at + 1).trim());
  }
  const token = env.get('TOKEN');
  const certificateKey = env.get('CERTIFICATE_KEY');
  const uploaded = Number(env.get('CERTS_UPLOADED'));
  return {
    // a value in another form was not written by us: treat it as missing, so a fresh one is made
    ...(token && TOKEN_FORMAT.test(token) ? { token } : {}),
    ...(certificateKey && CERTIFICATE_KEY_FORMAT.test(certificateKey) ? { certificateKey } : {}),
    certsUploaded: Number.isFinite(uploaded) && uploaded > 0 ? uploaded : 0,
  };
}

export function formatClusterEnv(s: { token: string; certificateKey?: string; certsUploaded: number }): string {
  return `TOKEN=${s.token}\n${s.certificateKey ? `CERTIFICATE_KEY=${s.certificateKey}\n` : ''}CERTS_UPLOADED=${s.certsUploaded}\n`;
}

/** The public half of a bootstrap token, the only part that may go on a command line. */
export function tokenId(token: string): string {
  const m = TOKEN_FORMAT.exec(token);
  if (!m) throw new Error('not a bootstrap token of the form [a-z0-9]{6}.[a-z0-9]{16}');
  return m[1]!;
}

/** True when `kubeadm token list` (its stdout) shows this token: it exists and has not expired. */
export function tokenListed(listOutput: string, token: string): boolean {
  return listOutput.split('\n').some((line) => line.trim().split(/\s+/)[0] === token);
}

/**
 * The token `kubeadm token create` printed: its last line. The error never quotes the output, which would be
 * the secret if only its form were wrong.
 */
export function parseCreatedToken(stdout: string): string {
  const token = stdout.trim().split('\n').at(-1)?.trim() ?? '';
  if (!TOKEN_FORMAT.test(token)) throw new Error('`kubeadm token create` printed no bootstrap token');
  return token;
}

/** The key `kubeadm certs certificate-key` printed. */
export function parseCertificateKey(stdout: string): string {
  const key = stdout.trim().split('\n').at(-1)?.trim() ?? '';
  if (!CERTIFICATE_KEY_FORMAT.test(key)) throw new Error('`kubeadm certs certificate-key` printed no certificate key');
  return key;
}

export interface JoinSecretsPlan {
  /** the stored token is missing, expired or deleted: `kubeadm token create` */
  newToken: boolean;
  /** a control plane joins and there is no stored key: `kubeadm certs certificate-key` */
  newCertificateKey: boolean;
  /** a control plane joins and the certificates under the key are gone or about to be: upload-certs */
  uploadCerts: boolean;
}

/**
 * What a run that has joins to do must make, given what cluster.env holds (left by this cluster's init or by a
 * run that stopped before its joins were done; a finished install removes it) and the cluster's live tokens.
 */
export function planJoinSecrets(stored: StoredJoinSecrets, tokenList: string, controlPlane: boolean, now: number): JoinSecretsPlan {
  const newToken = !stored.token || !tokenListed(tokenList, stored.token);
  const newCertificateKey = controlPlane && !stored.certificateKey;
  const uploadCerts = controlPlane && (newCertificateKey || now - stored.certsUploaded > UPLOADED_CERTS_TTL_MS);
  return { newToken, newCertificateKey, uploadCerts };
}
