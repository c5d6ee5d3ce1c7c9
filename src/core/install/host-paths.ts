/**
 * Every path install uses on a host, in one place. The host-side scripts (scripts/host/) spell none of them: they
 * read the roots from the KB_* variables hostScriptEnv() puts in front of every script it runs.
 */
export const REMOTE_ROOT = '/var/lib/kube-bundle';
/** one line per finished phase: `<phase> <bundle id> <time>` */
export const JOURNAL = `${REMOTE_ROOT}/journal`;
export const REGISTRY_STORAGE = `${REMOTE_ROOT}/registry`;
export const ETC = '/etc/kube-bundle';
export const PKI = `${ETC}/pki`;
/** the seeded registry's CA, trusted by every node */
export const CA_FILE = `${PKI}/ca.crt`;
/** join token and certificate key (0600, first control plane only), from init (or a later run) until the last join */
export const CLUSTER_ENV = `${ETC}/cluster.env`;
/** kubeadm's configs: the init and join ones hold the token, and the certificate key for control planes (0600) */
export const KUBEADM_INIT_CONFIG = `${ETC}/kubeadm-init.yaml`;
export const KUBEADM_JOIN_CONFIG = `${ETC}/kubeadm-join.yaml`;
/** the InitConfiguration `kubeadm init phase upload-certs --config` reads a new certificate key from (0600, removed after) */
export const KUBEADM_UPLOAD_CERTS_CONFIG = `${ETC}/kubeadm-upload-certs.yaml`;
/** every file that holds a join secret: removed from every host once no join needs them */
export const JOIN_SECRET_FILES = [KUBEADM_UPLOAD_CERTS_CONFIG, KUBEADM_JOIN_CONFIG, KUBEADM_INIT_CONFIG, CLUSTER_ENV];
export const SIGNER_KEY = `${ETC}/signer.asc`;
/** the settings the cluster was made with (first control plane): a re-run with other settings is refused */
export const CLUSTER_SETTINGS = `${ETC}/cluster-settings.json`;
/** the seeded registry's systemd unit, its unit file and its config */
export const REGISTRY_UNIT = 'kube-bundle-registry.service';
export const REGISTRY_UNIT_FILE = `/etc/systemd/system/${REGISTRY_UNIT}`;
export const REGISTRY_CONFIG = `${ETC}/registry/config.yml`;

/**
 * The variables every host script is run with (a prefix of shell assignments, not secret): the two roots and the
 * registry's unit. The scripts derive the rest (`$KB_ETC/pki`, `$KB_ROOT/apt`...) the same way as the constants above.
 */
export function hostScriptEnv(): string {
  return `KB_ROOT=${REMOTE_ROOT} KB_ETC=${ETC} KB_REGISTRY_UNIT=${REGISTRY_UNIT}`;
}
