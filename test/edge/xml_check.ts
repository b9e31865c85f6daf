/**
 * A strict, small XML reader for tests: throws on anything not well-formed
 * (unbalanced or mis-nested tags, unquoted or duplicate attributes, a bare `&`
 * or `<` in text, unknown entities, more than one root) and returns the
 * element tree, so tests can assert on what clients would read.
 *
 * @example
 * ```ts
 * const root = parseXml('<a x="1"><b>t</b></a>');
 * childText(root, "b"); // "t"
 * ```
 */
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const name = "[A-Za-z_][\\w.:-]*";
const entity = /&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g;

function decode(text: string, where: string): string {
  if (/[<]/.test(text)) throw new SyntaxError(`bare < in ${where}`);
  if (/&/.test(text.replace(entity, ""))) throw new SyntaxError(`bare & in ${where}: ${text}`);
  return text.replace(entity, (e) => {
    const table: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
    const body = e.slice(1, -1);
    if (body.startsWith("#x")) return String.fromCodePoint(parseInt(body.slice(2), 16));
    if (body.startsWith("#")) return String.fromCodePoint(parseInt(body.slice(1), 10));
    return table[body];
  });
}

export function parseXml(xml: string): XmlElement {
  let rest = xml.replace(/^\uFEFF/, "");
  const decl = new RegExp(`^<\\?xml(\\s+${name}\\s*=\\s*("[^"]*"|'[^']*'))*\\s*\\?>`);
  rest = rest.replace(decl, "");
  // A DOCTYPE with an external id only (no internal subset), as plist files have.
  rest = rest.replace(/^\s*<!DOCTYPE\s+[^\[>]*>/, "");
  const tag = new RegExp(
    `^<(/?)(${name})((?:\\s+${name}\\s*=\\s*(?:"[^"<]*"|'[^'<]*'))*)\\s*(/?)>`,
  );
  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;
  while (rest.length) {
    const lt = rest.indexOf("<");
    const text = lt < 0 ? rest : rest.slice(0, lt);
    if (text) {
      if (!stack.length) {
        if (text.trim()) throw new SyntaxError(`text outside the root: ${text.trim()}`);
      } else stack[stack.length - 1].text += decode(text, stack[stack.length - 1].name);
      rest = rest.slice(text.length);
      continue;
    }
    if (rest.startsWith("<!--")) {
      const end = rest.indexOf("-->");
      if (end < 0) throw new SyntaxError("unterminated comment");
      rest = rest.slice(end + 3);
      continue;
    }
    const m = tag.exec(rest);
    if (!m) throw new SyntaxError(`malformed tag at: ${rest.slice(0, 40)}`);
    rest = rest.slice(m[0].length);
    const [, closing, tagName, attrText, selfClosing] = m;
    if (closing) {
      const open = stack.pop();
      if (!open || open.name !== tagName || attrText || selfClosing) {
        throw new SyntaxError(`</${tagName}> closes ${open ? `<${open.name}>` : "nothing"}`);
      }
      continue;
    }
    const attrs: Record<string, string> = {};
    for (const a of attrText.matchAll(new RegExp(`(${name})\\s*=\\s*("([^"]*)"|'([^']*)')`, "g"))) {
      if (a[1] in attrs) throw new SyntaxError(`duplicate attribute ${a[1]}`);
      attrs[a[1]] = decode(a[3] ?? a[4], `${tagName}@${a[1]}`);
    }
    const el: XmlElement = { name: tagName, attrs, children: [], text: "" };
    if (stack.length) stack[stack.length - 1].children.push(el);
    else if (root) throw new SyntaxError("more than one root element");
    else root = el;
    if (!selfClosing) stack.push(el);
  }
  if (stack.length) throw new SyntaxError(`<${stack[stack.length - 1].name}> is never closed`);
  if (!root) throw new SyntaxError("no root element");
  return root;
}

/** Child elements named `tag` (namespace prefixes ignored). */
export function children(el: XmlElement, tag: string): XmlElement[] {
  return el.children.filter((c) => c.name.replace(/^.*:/, "") === tag);
}

/** The text of the first child named `tag`, or undefined. */
export function childText(el: XmlElement, tag: string): string | undefined {
  return children(el, tag)[0]?.text;
}

/** A plist `<dict>` as a JavaScript value (string, integer, true/false, array, dict). */
export function plistValue(el: XmlElement): unknown {
  switch (el.name) {
    case "string":
      return el.text;
    case "integer":
      return Number(el.text);
    case "true":
      return true;
    case "false":
      return false;
    case "array":
      return el.children.map(plistValue);
    case "dict": {
      const out: Record<string, unknown> = {};
      for (let i = 0; i < el.children.length; i += 2) {
        if (el.children[i].name !== "key") throw new SyntaxError("a dict entry without <key>");
        out[el.children[i].text] = plistValue(el.children[i + 1]);
      }
      return out;
    }
    default:
      throw new SyntaxError(`unknown plist element <${el.name}>`);
  }
}
