/** Every path install uses on a host, in one place (the host-side scripts take them as arguments). */
export const REMOTE_ROOT = '/var/lib/kube-bundle';
/** one line per finished phase: `<phase> <bundle id> <time>` */
export const JOURNAL = `${REMOTE_ROOT}/journal`;
export const REGISTRY_STORAGE = `${REMOTE_ROOT}/registry`;
export const ETC = '/etc/kube-bundle';
export const PKI = `${ETC}/pki`;
/** the seeded registry's CA, trusted by every node */
export const CA_FILE = `${PKI}/ca.crt`;
/** join token and certificate key (0600, first control plane only) */
export const CLUSTER_ENV = `${ETC}/cluster.env`;
export const SIGNER_KEY = `${ETC}/signer.asc`;
/** the settings the cluster was made with (first control plane): a re-run with other settings is refused */
export const CLUSTER_SETTINGS = `${ETC}/cluster-settings.json`;
