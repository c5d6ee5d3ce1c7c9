/**
 * Run the simulated upstream on its own (the demo, manual poking, or inside the lab's network namespace):
 *   node --import tsx test/upstream/serve.ts [--host 127.0.0.1] [--work-dir DIR]
 * Prints one JSON line (URLs, key file, --mirror flags) once everything answers; stops on SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';
import { startUpstream } from './index.js';

const { values } = parseArgs({ options: { host: { type: 'string' }, 'work-dir': { type: 'string' } } });
const upstream = await startUpstream({ host: values.host, workDir: values['work-dir'] });
const { stop, ...info } = upstream;
process.stdout.write(JSON.stringify(info) + '\n');
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void stop().then(() => process.exit(0)));
}
