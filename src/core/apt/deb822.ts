/**
 * deb822 control data (Packages, Release, the body of InRelease): paragraphs of `Field: value` lines separated by
 * blank lines, where a line starting with a space or tab continues the previous field and a line starting with `#`
 * is a comment.
 *
 * Built for Debian's main Packages file (~60k paragraphs, ~50 MB): one pass over the bytes with indexOf, no split()
 * and no decoding of the whole file. Only the values of the fields asked for are decoded, each into a string of its
 * own, so a caller can keep a few fields of every paragraph while the bytes (and the long Description fields nobody
 * here reads) are dropped, or keep a paragraph's text as a byte range (`scanDeb822`) and decode it when needed.
 */
import { UserError } from '../../util/errors.js';

export interface Deb822Fields {
  /**
   * Field values by lower-cased name (field names are case-insensitive). A value is the text after the colon,
   * trimmed; continuation lines are appended each trimmed, after a "\n". Description's " ." blank-line marks are
   * kept as "." (use the paragraph's text when the exact form matters).
   */
  readonly fields: ReadonlyMap<string, string>;
  /** 1-based line number of the paragraph's first line, for error messages. */
  readonly line: number;
}

export interface Deb822Paragraph extends Deb822Fields {
  /** The paragraph exactly as in the input, comments included, without the trailing newline. */
  readonly text: string;
}

/** A paragraph found by `scanDeb822`: its fields, and where its text lies in the input bytes. */
export interface Deb822Span extends Deb822Fields {
  /** Byte offset of the paragraph's first line. */
  readonly start: number;
  /** Byte offset just past its last line, trailing line breaks excluded. */
  readonly end: number;
}

export interface Deb822Options {
  /** Names the input in errors (a file path or URL). */
  source?: string;
  /**
   * Lower-cased names of the fields to keep in `fields`; others are skipped (they stay in the text). Saves most of
   * the work on Packages files, whose long Description fields nobody here reads.
   */
  onlyFields?: ReadonlySet<string>;
  /** Line number of the input's first line, when the input is a piece of a bigger file whose lines errors name. */
  firstLine?: number;
}

/** Parse every paragraph of `input` (text, or UTF-8 bytes). Throws a UserError naming the source and line on malformed input. */
export function parseDeb822(input: string | Uint8Array, options: Deb822Options = {}): Deb822Paragraph[] {
  const bytes = asBuffer(input);
  const paragraphs: Deb822Paragraph[] = [];
  for (const span of scanDeb822(bytes, options)) {
    paragraphs.push({ fields: span.fields, line: span.line, text: bytes.toString('utf8', span.start, span.end) });
  }
  return paragraphs;
}

/** Every paragraph of `bytes` (UTF-8) with the byte range of its text, parsed one at a time as the caller iterates. */
export function* scanDeb822(bytes: Uint8Array, options: Deb822Options = {}): Generator<Deb822Span> {
  const parser = new ParagraphParser(asBuffer(bytes), options);
  for (let span = parser.next(); span; span = parser.next()) yield span;
}

/** A byte range of an input that is too big to be held in memory at once (a Packages file on disk). */
export interface ByteSource {
  /** Up to `length` bytes from `position`; fewer only at the end of the input. */
  read(position: number, length: number): Buffer;
}

/**
 * `scanDeb822` over an input read in pieces of about `pieceBytes`: each piece is cut after its last blank line
 * and the rest carried into the next, so only a piece is held at a time. Spans give offsets in the whole input.
 */
export function* scanDeb822Pieces(input: ByteSource, options: Deb822Options = {}, pieceBytes = 4 << 20): Generator<Deb822Span> {
  const feed = new Deb822Feed(options, pieceBytes);
  for (let position = 0; ; ) {
    const fresh = input.read(position, pieceBytes);
    if (fresh.length === 0) break;
    position += fresh.length;
    yield* feed.push(fresh);
  }
  yield* feed.end();
}

/**
 * The same scan for bytes that arrive over time (a download being decompressed): push each chunk as it comes and
 * take the paragraphs it completes; `end()` gives the last one. Chunks are gathered until `minPiece` bytes are
 * waiting, so that small network chunks are not scanned (and carried) one at a time.
 */
export class Deb822Feed {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** offset in the whole input of the first pending byte */
  private offset = 0;
  private line: number;

  constructor(
    private readonly options: Deb822Options = {},
    private readonly minPiece = 1 << 20,
  ) {
    this.line = options.firstLine ?? 1;
  }

  /** Paragraphs completed by `chunk` (whose bytes must not change afterwards). */
  push(chunk: Uint8Array): Deb822Span[] {
    if (chunk.length === 0) return [];
    this.pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.pendingBytes += chunk.length;
    return this.pendingBytes >= this.minPiece ? this.scan(false) : [];
  }

  /** The paragraphs still waiting: the input has ended. */
  end(): Deb822Span[] {
    return this.scan(true);
  }

  private scan(atEnd: boolean): Deb822Span[] {
    const piece = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending, this.pendingBytes);
    const cut = atEnd ? piece.length : endOfLastBlankLine(piece);
    const spans: Deb822Span[] = [];
    if (cut > 0) {
      for (const span of scanDeb822(piece.subarray(0, cut), { ...this.options, firstLine: this.line })) {
        spans.push({ ...span, start: this.offset + span.start, end: this.offset + span.end });
      }
      this.line += countLineBreaks(piece, cut);
      this.offset += cut;
    }
    const rest = piece.subarray(cut);
    // a copy, so that the big piece it was cut from can go
    this.pending = rest.length === 0 ? [] : [Buffer.from(rest)];
    this.pendingBytes = rest.length;
    return spans;
  }
}

/** Offset just past the last line that ends with a line break and that the parser takes as blank; 0 when none. */
function endOfLastBlankLine(bytes: Buffer): number {
  for (let lineEnd = bytes.lastIndexOf(LF); lineEnd >= 0; ) {
    const lineStart = lineEnd === 0 ? 0 : bytes.lastIndexOf(LF, lineEnd - 1) + 1;
    const contentEnd = lineEnd > lineStart && bytes[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
    let blank = true;
    for (let i = lineStart; i < contentEnd && blank; i++) blank = isSpaceOrTab(bytes[i]);
    if (blank) return lineEnd + 1;
    lineEnd = lineStart - 1;
  }
  return 0;
}

function countLineBreaks(bytes: Buffer, end: number): number {
  let count = 0;
  for (let i = bytes.indexOf(LF); i >= 0 && i < end; i = bytes.indexOf(LF, i + 1)) count++;
  return count;
}

/** Parse text that must hold exactly one paragraph (a Release file). */
export function parseSingleParagraph(text: string, options: Deb822Options = {}): Deb822Paragraph {
  const paragraphs = parseDeb822(text, options);
  const where = options.source ?? 'input';
  const first = paragraphs[0];
  if (!first) throw new UserError(`${where}: no fields found`);
  if (paragraphs.length > 1) {
    throw new UserError(`${where}: expected one paragraph, found ${paragraphs.length} (second at line ${paragraphs[1]?.line})`);
  }
  return first;
}

/** A field that must be present; the error names the paragraph's source, line and field. */
export function requireField(paragraph: Deb822Fields, name: string, source = 'input'): string {
  const value = paragraph.fields.get(name.toLowerCase());
  if (value === undefined || value === '') {
    throw new UserError(`${source}:${paragraph.line}: paragraph has no ${name} field`);
  }
  return value;
}

/** A Buffer view of the same memory (no copy), or the UTF-8 encoding of a string. */
function asBuffer(input: string | Uint8Array): Buffer {
  if (typeof input === 'string') return Buffer.from(input, 'utf8');
  return Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
}

const SPACE = 0x20;
const TAB = 0x09;
const CR = 0x0d;
const LF = 0x0a;
const HASH = 0x23;
const COLON = 0x3a;

/**
 * Walks the input line by line with byte offsets (`pos` = start of the current line, `contentEnd` = its end
 * without the line break, `nextLine` = start of the next one), decoding only the values it keeps.
 */
class ParagraphParser {
  private pos = 0;
  private contentEnd = 0;
  private nextLine = 0;
  private lineNo = 0;
  private readonly names = new Map<string, string>();
  /** nameShape of each of onlyFields */
  private readonly wantedShapes: ReadonlySet<number> | undefined;
  private readonly source: string;

  constructor(
    private readonly input: Buffer,
    private readonly options: Deb822Options,
  ) {
    this.source = options.source ?? 'input';
    this.lineNo = (options.firstLine ?? 1) - 1;
    if (options.onlyFields) this.wantedShapes = new Set([...options.onlyFields].map((name) => nameShape(Buffer.from(name, 'latin1'), 0, name.length)));
  }

  /** The next paragraph, or undefined at the end of the input. */
  next(): Deb822Span | undefined {
    this.skipBlankAndCommentLines();
    if (this.pos >= this.input.length) return undefined;
    const start = this.pos;
    const startLine = this.lineNo + 1;
    const fields = new Map<string, string>();
    let current: PendingField | undefined;
    let end = start;
    while (this.pos < this.input.length) {
      this.findLineEnd();
      if (this.lineIsBlank()) break;
      this.lineNo++;
      const first = this.input[this.pos];
      if (first === SPACE || first === TAB) {
        if (!current) this.fail(`continuation line without a field before it`);
        if (current !== SKIPPED_FIELD) current.parts.push(this.decodeTrimmed(this.pos, this.contentEnd));
      } else if (first !== HASH) {
        if (current) store(fields, current);
        current = this.startField(fields);
      }
      end = this.contentEnd;
      this.pos = this.nextLine;
    }
    if (current) store(fields, current);
    return { fields, line: startLine, start, end };
  }

  private startField(fields: Map<string, string>): PendingField {
    const colon = this.input.indexOf(COLON, this.pos);
    if (colon <= this.pos || colon >= this.contentEnd) {
      const line = this.input.toString('utf8', this.pos, this.contentEnd);
      this.fail(`expected 'Field: value', got '${line.slice(0, 60)}'`);
    }
    if (this.wantedShapes && !this.wantedShapes.has(nameShape(this.input, this.pos, colon))) return SKIPPED_FIELD;
    // Field names are US-ASCII (deb822(5)), so latin1, the cheapest decoding, gives the same string.
    const name = this.input.toString('latin1', this.pos, colon);
    const lower = this.lowerCaseName(name);
    if (fields.has(lower)) this.fail(`duplicate field ${name}`);
    if (this.options.onlyFields && !this.options.onlyFields.has(lower)) return SKIPPED_FIELD;
    return { name: lower, parts: [this.decodeTrimmed(colon + 1, this.contentEnd)] };
  }

  /** A file has a few dozen distinct field names: lower-case each once, not once per line. */
  private lowerCaseName(name: string): string {
    let lower = this.names.get(name);
    if (lower === undefined) {
      lower = name.toLowerCase();
      this.names.set(name, lower);
    }
    return lower;
  }

  /** The bytes from..to as a string without surrounding whitespace; spaces and tabs are cut before decoding. */
  private decodeTrimmed(from: number, to: number): string {
    let start = from;
    let end = to;
    while (start < end && isSpaceOrTab(this.input[start])) start++;
    while (end > start && isSpaceOrTab(this.input[end - 1])) end--;
    // trim() is a no-op unless the value ends in other (Unicode) whitespace, as the text-based parser trimmed it
    return this.input.toString('utf8', start, end).trim();
  }

  private findLineEnd(): void {
    const nl = this.input.indexOf(LF, this.pos);
    const lineEnd = nl < 0 ? this.input.length : nl;
    this.nextLine = nl < 0 ? this.input.length : nl + 1;
    this.contentEnd = lineEnd > this.pos && this.input[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
  }

  /** Only spaces and tabs (or nothing) between pos and contentEnd: a paragraph separator. */
  private lineIsBlank(): boolean {
    for (let i = this.pos; i < this.contentEnd; i++) {
      if (!isSpaceOrTab(this.input[i])) return false;
    }
    return true;
  }

  private skipBlankAndCommentLines(): void {
    while (this.pos < this.input.length) {
      this.findLineEnd();
      if (!this.lineIsBlank() && this.input[this.pos] !== HASH) return;
      this.pos = this.nextLine;
      this.lineNo++;
    }
  }

  private fail(message: string): never {
    throw new UserError(`${this.source}:${this.lineNo}: ${message}`);
  }
}

/**
 * A field name's length and first and last bytes, with the ASCII case bit set, as one number. Names equal but for
 * case have the same shape, so a name whose shape no wanted field has is not wanted, and is never decoded.
 */
function nameShape(bytes: Buffer, from: number, to: number): number {
  const lower = (byte: number | undefined) => (byte ?? 0) | 0x20;
  return ((to - from) << 16) | (lower(bytes[from]) << 8) | lower(bytes[to - 1]);
}

function isSpaceOrTab(byte: number | undefined): boolean {
  return byte === SPACE || byte === TAB;
}

interface PendingField {
  name: string;
  parts: string[];
}

/** Stands for a field that onlyFields says to skip; its continuation lines are skipped with it. */
const SKIPPED_FIELD: PendingField = { name: '', parts: [] };

function store(fields: Map<string, string>, field: PendingField): void {
  if (field === SKIPPED_FIELD) return;
  const value = field.parts.length === 1 ? (field.parts[0] as string) : field.parts.join('\n').replace(/^\n/, '');
  fields.set(field.name, value);
}
