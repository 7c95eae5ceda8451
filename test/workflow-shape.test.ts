// The shape the workflows keep: no function in workflows/ longer than 80 lines (the session's driver
// included), so the lifecycle stays readable in one screen and each phase in its own module.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const ROOT = path.join(__dirname, '..', 'workflows');
const MAX_LINES = 80;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Every function-like node with its name and length in lines. */
function functionsOf(file: string): { name: string; lines: number }[] {
  const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: { name: string; lines: number }[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = src.getLineAndCharacterOfPosition(node.getStart()).line;
      const end = src.getLineAndCharacterOfPosition(node.getEnd()).line;
      const name = (node as ts.FunctionDeclaration).name?.getText() ?? `(anonymous at line ${start + 1})`;
      out.push({ name: `${path.relative(ROOT, file)}:${name}`, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
  return out;
}

describe('workflow code shape', () => {
  it(`no function in workflows/ is longer than ${MAX_LINES} lines`, () => {
    const all = files(ROOT).flatMap(functionsOf);
    assert.ok(
      all.some((f) => f.name.endsWith('session/index.ts:avatarSession')),
      'the driver was found',
    );
    const long = all.filter((f) => f.lines > MAX_LINES).map((f) => `${f.name}: ${f.lines} lines`);
    assert.deepEqual(long, []);
  });
});
