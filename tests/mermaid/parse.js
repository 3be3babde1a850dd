// Mermaid's own parser on the flowcharts plan draws (`plan graph --format mermaid`, the ```mermaid
// block of `plan show --format markdown`). Used by tests/integration/mermaid_test.cpp.
//   node parse.js NODE_MODULES_DIR [FILE...]      (no FILE, or -: standard input)
// Prints "ok FILE (DIAGRAM TYPE)" or "error FILE: mermaid's message" per file; exits 1 when any
// file does not parse, 2 when mermaid cannot be loaded.
'use strict';
const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');

async function main() {
  const modules = path.resolve(process.argv[2] || '');
  const files = process.argv.length > 3 ? process.argv.slice(3) : ['-'];
  let mermaid;
  try {
    // mermaid sanitizes labels with DOMPurify, which needs a window: jsdom's, set before mermaid
    // (and DOMPurify with it) is first imported.
    const { JSDOM } = require(path.join(modules, 'jsdom'));
    const { window } = new JSDOM('');
    globalThis.window = window;
    globalThis.document = window.document;
    const entry = require.resolve('mermaid', { paths: [modules] });
    mermaid = (await import(pathToFileURL(entry).href)).default;
    mermaid.initialize({ startOnLoad: false, logLevel: 'fatal' });
  } catch (e) {
    console.log('cannot load mermaid from ' + modules + ': ' + e.message);
    return 2;
  }
  let failed = 0;
  for (const file of files) {
    const text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
    try {
      const result = await mermaid.parse(text);
      console.log('ok ' + file + ' (' + result.diagramType + ')');
    } catch (e) {
      console.log('error ' + file + ': ' + String(e.message || e));
      failed = 1;
    }
  }
  return failed;
}

main().then((code) => process.exit(code));
