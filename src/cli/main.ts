#!/usr/bin/env node
// The only place that calls process.exit: run the program, turn any failure into one clear line and an exit code.
import { CommanderError } from 'commander';
import { createProgram } from './program.js';
import { describeFailure } from '../util/errors.js';

async function main(argv: string[]): Promise<number> {
  const program = createProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has already printed the message or the help; usage errors are user errors.
      return err.exitCode === 0 ? 0 : 2;
    }
    const { exitCode, text } = describeFailure(err, Boolean(program.opts().debug) || argv.includes('--debug'));
    process.stderr.write(text + '\n');
    return exitCode;
  }
}

// `bundle --help | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const code = await main(process.argv);
// A failed build may leave downloads under way that it started early (image blobs, packages asked for by name) for
// work it never got to. Their partial files stay in the cache for the next run to resume, as after Ctrl-C; waiting
// for them would only hold the error back. (stdout and stderr are synchronous on Linux: nothing printed is lost.)
if (code !== 0) process.exit(code);
process.exitCode = code;
