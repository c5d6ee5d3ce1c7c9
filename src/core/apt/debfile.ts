/**
 * Control stanzas (the `Field: value` paragraphs of Debian control files and apt indexes) and reading one out of a
 * .deb file. Debs that come from no apt index (cri-dockerd from GitHub releases) still need a stanza to be listed
 * in the bundle's own flat repository; `dpkg-deb` exists on every Debian/Ubuntu build machine and knows every
 * compression a deb may use, so we ask it rather than unpacking ar + tar ourselves.
 */
import { execFile } from 'node:child_process';
import { UserError } from '../../util/errors.js';

/**
 * One paragraph, fields in their original order. A multi-line value keeps its continuation lines exactly as in the
 * file (each starting with a space), e.g. Description: `short\n long text\n .`.
 */
export type ControlStanza = ReadonlyArray<readonly [name: string, value: string]>;

/** Parse exactly one paragraph. `source` names the text in errors (a file path or URL). */
export function parseControlStanza(text: string, source: string): ControlStanza {
  const fields: Array<[string, string]> = [];
  const lines = text.replace(/\n+$/, '').split('\n');
  lines.forEach((line, index) => {
    const last = fields[fields.length - 1];
    if (line === '') {
      throw new UserError(`${source}: line ${index + 1}: more than one paragraph where one control stanza was expected`);
    }
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (!last) throw new UserError(`${source}: line ${index + 1}: continuation line before any field`);
      last[1] += `\n${line}`;
      return;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new UserError(`${source}: line ${index + 1}: expected 'Field: value', got '${line}'`);
    fields.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  });
  if (fields.length === 0) throw new UserError(`${source}: empty control stanza`);
  return fields;
}

/** Field names are case-insensitive in Debian control files. */
export function controlField(stanza: ControlStanza, name: string): string | undefined {
  const wanted = name.toLowerCase();
  return stanza.find(([field]) => field.toLowerCase() === wanted)?.[1];
}

/** Like controlField, for fields without which the stanza is useless (Package, Version, Architecture). */
export function requireControlField(stanza: ControlStanza, name: string, source: string): string {
  const value = controlField(stanza, name);
  if (value === undefined || value === '') throw new UserError(`${source}: the control stanza has no ${name} field`);
  return value;
}

/** The control stanza of a .deb file, via `dpkg-deb --field` (which prints the whole control file). */
export async function readDebControl(debPath: string): Promise<ControlStanza> {
  const text = await runDpkgDebField(debPath);
  return parseControlStanza(text, debPath);
}

function runDpkgDebField(debPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('dpkg-deb', ['--field', debPath], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(new UserError(`cannot read ${debPath}: dpkg-deb is not installed`, 'install the dpkg package (present on every Debian/Ubuntu system)'));
      }
      const reason = stderr.trim().replace(/^dpkg-deb: error: /, '') || err.message;
      reject(new UserError(`${debPath} is not a readable Debian package: ${reason}`));
    });
  });
}
