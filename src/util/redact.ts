/**
 * The one way a URL is shown to anyone (errors, progress, logs): without the credentials an operator may have put
 * in a `--mirror` URL (`https://user:password@mirror/...`) and without a query, which on a mirror or a CDN redirect
 * is often a token or a signature. Both are replaced by `***` so the reader still sees that something was there.
 */

/** Userinfo: everything between `://` and the last `@` before the host ends (a password may itself hold an `@`). */
const USERINFO = /(:\/\/)[^\s/?#'"<>]*@/g;
/** A query after a URL's host and path, up to where the URL ends in running text. */
const QUERY = /(:\/\/[^\s?#'"<>]*)\?[^\s#'"<>)]*/g;
/** A fragment is never needed to say which URL failed. */
const FRAGMENT = /(:\/\/[^\s#'"<>]*)#[^\s'"<>)]*/g;

/**
 * Every URL in `text` redacted; the rest of the text unchanged. Works on text rather than on parsed URLs so that
 * it also covers what another library put in an error message and a `--mirror from=to` flag quoted whole.
 */
export function redactUrls(text: string): string {
  return text.replace(USERINFO, '$1***@').replace(QUERY, '$1?***').replace(FRAGMENT, '$1');
}

/** One URL, redacted (see redactUrls). */
export function redactUrl(url: URL | string): string {
  return redactUrls(typeof url === 'string' ? url : url.href);
}
