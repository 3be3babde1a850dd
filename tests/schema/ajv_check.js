// An independent check of schemas/plan.schema.json: ajv compiles it in strict mode, then says
// for each plan file given whether the schema accepts it. Used by tests/integration/schema_test.cpp.
//   node ajv_check.js NODE_MODULES_DIR SCHEMA FILE...
// Prints "compiled" (or "compile error: ..." and exits 1), then one line per file:
// "valid FILE" or "invalid FILE: first error".
'use strict';
const path = require('path');
const fs = require('fs');
const modules = path.resolve(process.argv[2]);
const Ajv = require(path.join(modules, 'ajv'));
const YAML = require(path.join(modules, 'yaml'));

const schema = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const ajv = new Ajv({ strict: true, allErrors: true });
let validate;
try {
  validate = ajv.compile(schema);
} catch (e) {
  console.log('compile error: ' + e.message);
  process.exit(1);
}
console.log('compiled');
for (const file of process.argv.slice(4)) {
  let doc;
  try {
    // Merge keys (<<: *anchor) as plan reads them; duplicate keys are an error, as in plan.
    doc = YAML.parse(fs.readFileSync(file, 'utf8'), { merge: true });
  } catch (e) {
    console.log('invalid ' + file + ': YAML: ' + e.message.split('\n')[0]);
    continue;
  }
  if (validate(doc)) {
    console.log('valid ' + file);
  } else {
    const e = validate.errors[0];
    console.log('invalid ' + file + ': ' + e.instancePath + ' ' + e.message);
  }
}
