// Mermaid's own parser on the diagrams plan draws: the flowcharts (`plan graph --format mermaid`,
// the ```mermaid block of `plan show --format markdown`) and the Gantt chart of `plan report
// --format markdown`. Used by tests/integration/mermaid_test.cpp and report_test.cpp.
//   node parse.js NODE_MODULES_DIR [--tasks] [FILE...]      (no FILE, or -: standard input)
// Prints "ok FILE (DIAGRAM TYPE)" or "error FILE: mermaid's message" per file; exits 1 when any
// file does not parse, 2 when mermaid cannot be loaded. Mermaid's grammar takes any text as a
// Gantt task's dates, so a Gantt chart is also read into mermaid's own task list, as its renderer
// would, and a task whose start or end mermaid cannot read is an error. With --tasks, each Gantt
// chart's tasks follow its ok line as one line of JSON: "tasks FILE [{task, id, section, start,
// end, crit, active}]" (start and end in ms since the epoch).
'use strict';
const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');

// The tasks of a Gantt chart as mermaid's renderer reads them; throws on a date it cannot read.
async function ganttTasks(mermaid, text) {
  const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
  return diagram.db.getTasks().map((t) => {
    const start = t.startTime instanceof Date ? t.startTime.getTime() : NaN;
    const end = t.endTime instanceof Date ? t.endTime.getTime() : NaN;
    if (!Number.isFinite(start) || !Number.isFinite(end) || end < start)
      throw new Error('task "' + t.task.trim() + '" has no valid start and end');
    return { task: t.task.trim(), id: t.id, section: t.section, start, end, crit: !!t.crit, active: !!t.active };
  });
}

async function main() {
  const modules = path.resolve(process.argv[2] || '');
  let args = process.argv.slice(3);
  const printTasks = args[0] === '--tasks';
  if (printTasks) args = args.slice(1);
  const files = args.length > 0 ? args : ['-'];
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
      const tasks = result.diagramType === 'gantt' ? await ganttTasks(mermaid, text) : null;
      console.log('ok ' + file + ' (' + result.diagramType + ')');
      if (tasks && printTasks) console.log('tasks ' + file + ' ' + JSON.stringify(tasks));
    } catch (e) {
      console.log('error ' + file + ': ' + String(e.message || e));
      failed = 1;
    }
  }
  return failed;
}

main().then((code) => process.exit(code));
