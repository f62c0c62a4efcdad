// mermaid-parse.mjs: parse Mermaid diagrams with the real Mermaid parser, for scripts/docs-check.
//
// stdin:  JSON [{"id": "...", "text": "..."}, ...]
// stdout: JSON [{"id": "...", "ok": true} | {"id": "...", "ok": false, "error": "..."}, ...]
//
// One process parses every block (starting Node and loading Mermaid is the slow part).
// Mermaid sanitizes labels with DOMPurify, which needs a window: jsdom provides one.
import { JSDOM } from 'jsdom';

// Mermaid may log; keep stdout for the answer alone.
console.log = console.info = console.debug = console.warn = () => {};
globalThis.window = new JSDOM('').window;
const { default: mermaid } = await import('mermaid');

let input = '';
for await (const chunk of process.stdin) input += chunk;

const results = [];
for (const { id, text } of JSON.parse(input)) {
    try {
        await mermaid.parse(text);
        results.push({ id, ok: true });
    } catch (e) {
        results.push({ id, ok: false, error: String(e && e.message ? e.message : e) });
    }
}
process.stdout.write(JSON.stringify(results) + '\n');
