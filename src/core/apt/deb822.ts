/**
 * deb822 control data (Packages, Release, the body of InRelease): paragraphs of `Field: value` lines separated by
 * blank lines, where a line starting with a space or tab continues the previous field and a line starting with `#`
 * is a comment.
 *
 * Built for Debian's main Packages file (~60k paragraphs, ~50 MB): one pass over the text with indexOf, no split()
 * of the whole file, and each paragraph's text is a slice of the input (V8 shares the input's storage for slices, so
 * keeping the original text of every paragraph costs no copy).
 */
import { UserError } from '../../util/errors.js';

export interface Deb822Paragraph {
  /**
   * Field values by lower-cased name (field names are case-insensitive). A value is the text after the colon,
   * trimmed; continuation lines are appended each trimmed, after a "\n". Description's " ." blank-line marks are
   * kept as "." (use `text` when the exact form matters).
   */
  readonly fields: ReadonlyMap<string, string>;
  /** The paragraph exactly as in the input, comments included, without the trailing newline. */
  readonly text: string;
  /** 1-based line number of the paragraph's first line, for error messages. */
  readonly line: number;
}

export interface Deb822Options {
  /** Names the input in errors (a file path or URL). */
  source?: string;
  /**
   * Lower-cased names of the fields to keep in `fields`; others are skipped (they stay in `text`). Saves most of
   * the work on Packages files, whose long Description fields nobody here reads.
   */
  onlyFields?: ReadonlySet<string>;
}

/** Parse every paragraph of `text`. Throws a UserError naming the source and line on malformed input. */
export function parseDeb822(text: string, options: Deb822Options = {}): Deb822Paragraph[] {
  const parser = new ParagraphParser(text, options);
  const paragraphs: Deb822Paragraph[] = [];
  for (let p = parser.next(); p; p = parser.next()) paragraphs.push(p);
  return paragraphs;
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
export function requireField(paragraph: Deb822Paragraph, name: string, source = 'input'): string {
  const value = paragraph.fields.get(name.toLowerCase());
  if (value === undefined || value === '') {
    throw new UserError(`${source}:${paragraph.line}: paragraph has no ${name} field`);
  }
  return value;
}

/**
 * Walks the input line by line with offsets (`pos` = start of the current line, `contentEnd` = its end without
 * the line break, `nextLine` = start of the next one), slicing only the text it keeps.
 */
class ParagraphParser {
  private pos = 0;
  private contentEnd = 0;
  private nextLine = 0;
  private lineNo = 0;
  private readonly names = new Map<string, string>();
  private readonly source: string;

  constructor(
    private readonly input: string,
    private readonly options: Deb822Options,
  ) {
    this.source = options.source ?? 'input';
  }

  /** The next paragraph, or undefined at the end of the input. */
  next(): Deb822Paragraph | undefined {
    this.skipBlankAndCommentLines();
    if (this.pos >= this.input.length) return undefined;
    const start = this.pos;
    const startLine = this.lineNo + 1;
    const fields = new Map<string, string>();
    let current: PendingField | undefined;
    while (this.pos < this.input.length) {
      this.findLineEnd();
      if (this.lineIsBlank()) break;
      this.lineNo++;
      const first = this.input.charCodeAt(this.pos);
      if (first === 0x20 || first === 0x09) {
        if (!current) this.fail(`continuation line without a field before it`);
        if (current !== SKIPPED_FIELD) current.parts.push(this.input.slice(this.pos, this.contentEnd).trim());
      } else if (first !== 0x23 /* # */) {
        if (current) store(fields, current);
        current = this.startField(fields);
      }
      this.pos = this.nextLine;
    }
    if (current) store(fields, current);
    return { fields, text: trimNewline(this.input.slice(start, this.pos)), line: startLine };
  }

  private startField(fields: Map<string, string>): PendingField {
    const colon = this.input.indexOf(':', this.pos);
    if (colon <= this.pos || colon >= this.contentEnd) {
      this.fail(`expected 'Field: value', got '${this.input.slice(this.pos, Math.min(this.contentEnd, this.pos + 60))}'`);
    }
    const name = this.lowerCaseName(this.input.slice(this.pos, colon));
    if (fields.has(name)) this.fail(`duplicate field ${this.input.slice(this.pos, colon)}`);
    if (this.options.onlyFields && !this.options.onlyFields.has(name)) return SKIPPED_FIELD;
    return { name, parts: [this.input.slice(colon + 1, this.contentEnd).trim()] };
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

  private findLineEnd(): void {
    const nl = this.input.indexOf('\n', this.pos);
    const lineEnd = nl < 0 ? this.input.length : nl;
    this.nextLine = nl < 0 ? this.input.length : nl + 1;
    this.contentEnd = lineEnd > this.pos && this.input.charCodeAt(lineEnd - 1) === 0x0d ? lineEnd - 1 : lineEnd;
  }

  /** Only spaces and tabs (or nothing) between pos and contentEnd: a paragraph separator. */
  private lineIsBlank(): boolean {
    for (let i = this.pos; i < this.contentEnd; i++) {
      const c = this.input.charCodeAt(i);
      if (c !== 0x20 && c !== 0x09) return false;
    }
    return true;
  }

  private skipBlankAndCommentLines(): void {
    while (this.pos < this.input.length) {
      this.findLineEnd();
      if (!this.lineIsBlank() && this.input.charCodeAt(this.pos) !== 0x23) return;
      this.pos = this.nextLine;
      this.lineNo++;
    }
  }

  private fail(message: string): never {
    throw new UserError(`${this.source}:${this.lineNo}: ${message}`);
  }
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

function trimNewline(text: string): string {
  let end = text.length;
  while (end > 0 && (text.charCodeAt(end - 1) === 0x0a || text.charCodeAt(end - 1) === 0x0d)) end--;
  return text.slice(0, end);
}
