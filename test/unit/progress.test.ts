import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createProgress, describeTransfer, formatBytes } from '../../src/util/progress.js';

/** A stand-in for stderr that keeps what is written. */
function fakeStream(tty: { isTTY: boolean; columns?: number }): NodeJS.WriteStream & { text: () => string } {
  const chunks: string[] = [];
  const stream = {
    ...tty,
    write: (s: string) => chunks.push(String(s)) > 0,
    cursorTo: () => true,
    clearLine: () => true,
    moveCursor: () => true,
    text: () => chunks.join(''),
  };
  return stream as unknown as NodeJS.WriteStream & { text: () => string };
}

describe('progress', () => {
  it('writes plain lines when not on a terminal, and on a terminal that reports no width', async () => {
    for (const tty of [{ isTTY: false }, { isTTY: true, columns: 0 }, { isTTY: true }]) {
      const stream = fakeStream(tty);
      const progress = await createProgress({ stream });
      progress.step('Reading package indexes');
      progress.succeed();
      assert.match(stream.text(), /^• Reading package indexes\n✓ Reading package indexes \(0s\)\n$/, JSON.stringify(tty));
    }
  });

  it('draws a spinner on a terminal with a width', async () => {
    const stream = fakeStream({ isTTY: true, columns: 80 });
    const progress = await createProgress({ stream });
    progress.step('Packing');
    progress.succeed();
    assert.doesNotMatch(stream.text(), /^• /);
    assert.match(stream.text(), /Packing/);
  });

  it('prints nothing under --json', async () => {
    const stream = fakeStream({ isTTY: false });
    const progress = await createProgress({ json: true, stream });
    progress.step('x');
    progress.succeed();
    assert.equal(stream.text(), '');
  });

  it('describes a transfer with rate and ETA', () => {
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(describeTransfer(12 * 1024 * 1024, 48 * 1024 * 1024, 2), '12.0 MiB / 48.0 MiB, 6.0 MiB/s, ETA 6s');
  });
});
