import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Deb822Feed, parseDeb822, parseSingleParagraph, requireField, scanDeb822, scanDeb822Pieces, type ByteSource, type Deb822Span } from '../../src/core/apt/deb822.js';
import { UserError } from '../../src/util/errors.js';

const PACKAGES = `Package: conntrack
Version: 1:1.4.7-1+b2
Architecture: amd64
Depends: libc6 (>= 2.34),
 libmnl0 (>= 1.0.3-4~),
\tlibnetfilter-conntrack3 (>= 1.0.9)
Description: Program to modify the conntrack tables
 conntrack is a userspace command line program.
 .
 Second paragraph.

# a comment between paragraphs


Package: runc
version: 1.1.5+ds1-1+deb12u1
# a comment inside a paragraph
Architecture: amd64
`;

describe('parseDeb822', () => {
  it('splits paragraphs on blank lines and keeps line numbers', () => {
    const paragraphs = parseDeb822(PACKAGES);
    assert.equal(paragraphs.length, 2);
    assert.equal(paragraphs[0]?.line, 1);
    assert.equal(paragraphs[1]?.line, 15);
  });

  it('joins continuation lines (space or tab) with newlines, each trimmed', () => {
    const [conntrack] = parseDeb822(PACKAGES);
    assert.equal(conntrack?.fields.get('depends'), 'libc6 (>= 2.34),\nlibmnl0 (>= 1.0.3-4~),\nlibnetfilter-conntrack3 (>= 1.0.9)');
    assert.equal(conntrack?.fields.get('description'), 'Program to modify the conntrack tables\nconntrack is a userspace command line program.\n.\nSecond paragraph.');
  });

  it('looks fields up case-insensitively through lower-cased keys', () => {
    const runc = parseDeb822(PACKAGES)[1];
    assert.equal(runc?.fields.get('version'), '1.1.5+ds1-1+deb12u1');
    assert.ok(runc && requireField(runc, 'Version') === '1.1.5+ds1-1+deb12u1');
  });

  it('keeps each paragraph\'s original text, comments included, without the trailing newline', () => {
    const [conntrack, runc] = parseDeb822(PACKAGES);
    assert.ok(conntrack?.text.startsWith('Package: conntrack\nVersion: 1:1.4.7-1+b2\n'));
    assert.ok(conntrack?.text.endsWith(' Second paragraph.'));
    assert.equal(runc?.text, 'Package: runc\nversion: 1.1.5+ds1-1+deb12u1\n# a comment inside a paragraph\nArchitecture: amd64');
    assert.equal(runc?.fields.size, 3, 'the comment is not a field');
  });

  it('keeps only the fields asked for, skipping their continuation lines too', () => {
    const [conntrack] = parseDeb822(PACKAGES, { onlyFields: new Set(['package', 'version']) });
    assert.deepEqual([...(conntrack?.fields.keys() ?? [])], ['package', 'version']);
    assert.ok(conntrack?.text.includes('Second paragraph.'), 'skipped fields stay in the text');
  });

  it('handles CRLF line ends and whitespace-only separator lines', () => {
    const paragraphs = parseDeb822('A: 1\r\nB: 2\r\n  \t\r\nA: 3\r\n');
    assert.deepEqual(paragraphs.map((p) => [...p.fields.values()]), [['1', '2'], ['3']]);
  });

  it('gives no paragraphs for empty input', () => {
    assert.deepEqual(parseDeb822(''), []);
    assert.deepEqual(parseDeb822('\n\n# only a comment\n'), []);
  });

  it('names the source and line of malformed input', () => {
    assert.throws(() => parseDeb822('Package: a\nno colon here\n', { source: 'Packages' }), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.equal(err.message, "Packages:2: expected 'Field: value', got 'no colon here'");
      return true;
    });
    assert.throws(() => parseDeb822(' continued\n', { source: 'x' }), /x:1: continuation line without a field/);
    assert.throws(() => parseDeb822('A: 1\na: 2\n', { source: 'x' }), /x:2: duplicate field a/);
  });

  it('requireField names the field and paragraph when it is missing', () => {
    const [p] = parseDeb822('\nPackage: a\n');
    assert.ok(p);
    assert.throws(() => requireField(p, 'Version', 'Packages'), /Packages:2: paragraph has no Version field/);
  });
});

describe('parseDeb822 and scanDeb822 on bytes', () => {
  const UTF8 = 'Package: tzdata\nDescription: zones — Zeitzonen\n Zürich, 東京\n\nPackage: après\nVersion: 1\n';
  const bytes = Buffer.from(UTF8, 'utf8');

  it('decodes UTF-8 bytes as the text would parse', () => {
    assert.deepEqual(parseDeb822(bytes), parseDeb822(UTF8));
    assert.equal(parseDeb822(bytes)[0]?.fields.get('description'), 'zones — Zeitzonen\nZürich, 東京');
    assert.equal(parseDeb822(bytes)[1]?.fields.get('package'), 'après');
  });

  it('gives each paragraph as a byte range of the input, without the line break after it', () => {
    const spans = [...scanDeb822(bytes)];
    assert.deepEqual(
      spans.map((s) => bytes.toString('utf8', s.start, s.end)),
      ['Package: tzdata\nDescription: zones — Zeitzonen\n Zürich, 東京', 'Package: après\nVersion: 1'],
    );
    assert.deepEqual(spans.map((s) => s.line), [1, 5]);
  });

  it('counts lines from firstLine, for a piece of a bigger file', () => {
    assert.throws(() => parseDeb822('A: 1\nbroken\n', { source: 'Packages', firstLine: 40 }), /Packages:41: expected 'Field: value'/);
  });
});

/** For the scans in pieces: paragraphs of different lengths, CRLF, whitespace-only separators, comments, a paragraph longer than a piece. */
const PIECES_TEXT = [
  'Package: a\nVersion: 1\nDescription: short\n',
  'Package: b\r\nVersion: 2\r\n  \t\r\n',
  '# a comment\n\n\nPackage: c\nDescription: long\n' + ' line of text\n'.repeat(40) + '\n',
  'Package: d\n# inside\nVersion: 4',
].join('\n');
const plain = (spans: Iterable<Deb822Span>) => [...spans].map((s) => ({ ...s, fields: [...s.fields] }));

describe('scanDeb822Pieces', () => {
  const bytes = Buffer.from(PIECES_TEXT);
  const inMemory: ByteSource = { read: (position, length) => bytes.subarray(position, position + length) };

  it('finds the same paragraphs, lines and offsets as one scan of the whole, whatever the piece size', () => {
    const whole = plain(scanDeb822(bytes, { source: 'P' }));
    assert.equal(whole.length, 4);
    for (const pieceBytes of [1, 7, 64, 100, 4096]) {
      assert.deepEqual(plain(scanDeb822Pieces(inMemory, { source: 'P' }, pieceBytes)), whole, `pieces of ${pieceBytes} bytes`);
    }
  });

  it('names the line of the whole input in errors from a later piece', () => {
    const bad = Buffer.from('A: 1\n\n'.repeat(30) + 'B: 2\nno colon\n');
    const source: ByteSource = { read: (position, length) => bad.subarray(position, position + length) };
    assert.throws(() => [...scanDeb822Pieces(source, { source: 'Packages' }, 16)], /Packages:62: expected 'Field: value', got 'no colon'/);
  });
});

describe('Deb822Feed', () => {
  const bytes = Buffer.from(PIECES_TEXT);
  /** Push `bytes` cut at the given sizes (cycled), collecting what each push and end() give. */
  function feedInChunks(sizes: number[], minPiece: number): Deb822Span[] {
    const feed = new Deb822Feed({ source: 'P' }, minPiece);
    const spans: Deb822Span[] = [];
    for (let at = 0, i = 0; at < bytes.length; i++) {
      const size = sizes[i % sizes.length] as number;
      spans.push(...feed.push(bytes.subarray(at, at + size)));
      at += size;
    }
    return [...spans, ...feed.end()];
  }

  it('gives the paragraphs, lines and offsets of one scan of the whole, however the bytes arrive', () => {
    const whole = plain(scanDeb822(bytes, { source: 'P' }));
    for (const [sizes, minPiece] of [[[1], 1], [[3, 50, 7], 16], [[bytes.length], 1 << 20], [[100, 1], 64]] as const) {
      assert.deepEqual(plain(feedInChunks([...sizes], minPiece)), whole, `chunks of ${sizes.join(',')}, pieces of ${minPiece}`);
    }
  });

  it('hands out a paragraph as soon as the blank line after it has arrived and a piece is full', () => {
    const feed = new Deb822Feed({ source: 'P' }, 1);
    assert.deepEqual(feed.push(Buffer.from('Package: a\nVersion: 1\n')), []);
    assert.deepEqual(feed.push(Buffer.from('\nPackage: b\n')).map((s) => s.fields.get('package')), ['a']);
    assert.deepEqual(feed.end().map((s) => [s.fields.get('package'), s.line]), [['b', 4]]);
  });

  it('names the line of the whole input in errors', () => {
    const feed = new Deb822Feed({ source: 'Packages' }, 8);
    for (let i = 0; i < 30; i++) feed.push(Buffer.from('A: 1\n\n'));
    assert.throws(() => [...feed.push(Buffer.from('B: 2\nno colon\n\n')), ...feed.end()], /Packages:62: expected 'Field: value', got 'no colon'/);
  });
});

describe('parseSingleParagraph', () => {
  it('returns the one paragraph and refuses more or none', () => {
    assert.equal(parseSingleParagraph('Suite: stable\n').fields.get('suite'), 'stable');
    assert.throws(() => parseSingleParagraph('A: 1\n\nB: 2\n', { source: 'Release' }), /Release: expected one paragraph, found 2 \(second at line 3\)/);
    assert.throws(() => parseSingleParagraph('\n', { source: 'Release' }), /Release: no fields found/);
  });
});
