/**
 * Run the simulated upstream on its own (the demo, manual poking, or inside the lab's network namespace):
 *   node --import tsx test/upstream/serve.ts [--host 127.0.0.1] [--work-dir DIR] [--upgrades]
 * (`--upgrades`: also serve v1.32.4, v1.33.1 and v1.34.1 with their images, see index.ts)
 * Prints one JSON line (URLs, key file, --mirror flags) once everything answers; stops on SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';
import { startUpstream } from './index.js';

const { values } = parseArgs({ options: { host: { type: 'string' }, 'work-dir': { type: 'string' }, upgrades: { type: 'boolean' } } });
const upstream = await startUpstream({ host: values.host, workDir: values['work-dir'], upgrades: values.upgrades ?? false });
const { stop, ...info } = upstream;
process.stdout.write(JSON.stringify(info) + '\n');
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void stop().then(() => process.exit(0)));
}
